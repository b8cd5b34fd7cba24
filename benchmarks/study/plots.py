"""What renders: the study's plots, one function a figure, as PNG bytes per file name."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def render_plots(res: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes per file name."""
    import matplotlib

    matplotlib.use("Agg")  # chosen when drawing, never at import time
    import matplotlib.pyplot as plt

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()

    return {"pooling_study_auc.png": png(_auc(res, plt)),
            "pooling_study_tracking.png": png(_tracking(res, plt))}


def _auc(res: dict[str, Any], plt):
    """All-pairs AUC per mode, one bar per adaptation, one panel per backbone."""
    backbones, ads = res["backbones"], res["adaptations"]
    sizes = [len(res["identity_separation"][b["name"]]["modes"]) for b in backbones]
    fig, axes = plt.subplots(1, len(backbones), figsize=(2 + 0.9 * sum(sizes), 4.2),
                             squeeze=False, sharey=True,
                             gridspec_kw={"width_ratios": [max(s, 1) for s in sizes]})
    width = 0.8 / len(ads)
    lowest = min(v[a]["all"]["auc"] for b in backbones
                 for v in res["identity_separation"][b["name"]]["modes"].values() for a in ads)
    for ax, b in zip(axes[0], backbones):
        modes = res["identity_separation"][b["name"]]["modes"]
        x = np.arange(len(modes))
        for k, a in enumerate(ads):
            ax.bar(x + (k - (len(ads) - 1) / 2) * width,
                   [v[a]["all"]["auc"] for v in modes.values()], width, label=f"adaptation {a}")
        ax.set_xticks(x, list(modes), rotation=60, ha="right", fontsize=8)
        ax.set_title(b["label"], fontsize=9)
        ax.set_ylim(max(0.0, lowest - 0.05), 1.0)  # one scale: the axes are shared
    axes[0][0].set_ylabel("ROC AUC, ground-truth pairs")
    axes[0][0].legend(fontsize=8)
    return fig


def _tracking(res: dict[str, Any], plt):
    """Mean IDF1 per tracked row (bar) and each run's IDF1 (one marker per run)."""
    rows = res["tracking"]
    labels = [("motion only\n" + r["lifecycle"]) if r["backbone"] == "-"
              else f"{r['label']}\n{r['mode']} / {r['adaptation']}" for r in rows]
    runs = list(dict.fromkeys(k for r in rows for k in r["runs"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.6))
    y = np.arange(len(rows))
    ax.barh(y, [100 * r["idf1"]["mean"] for r in rows], color=["0.75" if r["backbone"] == "-"
                                                               else "#9ecae1" for r in rows])
    for k, (run, marker) in enumerate(zip(runs, "osD^v<>p*h")):
        ax.scatter([100 * r["runs"][run]["idf1"] if run in r["runs"] else np.nan for r in rows],
                   y, marker=marker, s=18, color=f"C{k}", label=run, zorder=3)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("IDF1 (%): bar = mean over runs, markers = each run")
    ax.legend(fontsize=7, loc="lower right")
    return fig
