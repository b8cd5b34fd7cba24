"""What renders: the study's plots, one function a figure, as PNG bytes per file name."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from study.common import BASELINE


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

    palette = plt.get_cmap("tab20").colors
    colour = {m["name"]: palette[(2 * i) % 20 + (2 * i) // 20] for i, m in enumerate(res["modes"])}
    out = {}
    for name, draw in (("tracking", _tracking), ("auc", _auc), ("threshold", _threshold),
                       ("layers", _layers), ("cost", _cost)):
        if name == "layers" and not res["layers"]:
            continue
        out[f"pooling_study_{name}.png"] = png(draw(res, plt, colour))
    return out


def _tracking(res: dict[str, Any], plt, colour: dict[str, Any]):
    """IDF1 and HOTA per mode, one panel per detection file."""
    s = res["summary"]
    names = list(s) + [f"{BASELINE} {t}" for t in res["baseline"]]
    dfs = list(next(iter(s.values()))["per_det_file"])
    fig, axes = plt.subplots(1, len(dfs), figsize=(7 * len(dfs), 5), squeeze=False)
    for ax, d in zip(axes[0], dfs):
        vals = [s[n]["per_det_file"][d] for n in s] + [
            e["per_det_file"][d] for e in res["baseline"].values()]
        x = np.arange(len(names))
        for k, key in enumerate(("idf1", "hota")):
            ax.bar(x + (k - 0.5) * 0.4, [100 * v[key] for v in vals], 0.4, label=key.upper())
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("%")
        lo = min(100 * min(v["hota"], v["idf1"]) for v in vals)
        ax.set_ylim(max(0, lo - 10), None)
        ax.set_title(f"{d} (both sequences, tuned threshold)")
        ax.legend()
    return fig


def _auc(res: dict[str, Any], plt, colour: dict[str, Any]):
    """Identity-separation AUC per mode and layer."""
    sep = res["identity_separation"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    modes = list(next(iter(sep.values()))["modes"])
    x = np.arange(len(modes))
    width = 0.8 / len(sep)
    for k, (lay, v) in enumerate(sep.items()):
        ax.bar(x + (k - (len(sep) - 1) / 2) * width, [v["modes"][m]["all"]["auc"] for m in modes],
               width, label=lay)
    ax.set_xticks(x, modes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("ROC AUC (same vs different identity)")
    allv = [v["modes"][m]["all"]["auc"] for v in sep.values() for m in modes]
    ax.set_ylim(max(0.0, min(allv) - 0.05), min(1.0, max(allv) + 0.02))
    ax.set_title("Identity separation on ground-truth boxes, per mode and layer")
    ax.legend()
    return fig


def _threshold(res: dict[str, Any], plt, colour: dict[str, Any]):
    """The tuning run's metric against the threshold, per mode."""
    s = res["summary"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    st = res["settings"]
    for name, rows in res["tuning"].items():
        ts = sorted(rows, key=float)
        ax.plot([float(t) for t in ts], [100 * rows[t][st["tuning_metric"]] for t in ts],
                marker="o", ms=3, label=name, color=colour.get(name))
    if "motion only" in s:
        mo = [r for r in res["runs"] if r["mode"] == "motion only"
              and f"{r['sequence']}/{r['det_file']}" == st["tuning_run"]]
        if mo:
            ax.axhline(100 * mo[0][st["tuning_metric"]], color="k", ls="--", label="motion only")
    ax.set_xlabel("max_cosine_distance")
    ax.set_ylabel(f"{st['tuning_metric'].upper()} %")
    ax.set_title(f"Threshold tuning on {st['tuning_run']}")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _layers(res: dict[str, Any], plt, colour: dict[str, Any]):
    """The top modes' tracking scores and every mode's AUC across layers."""
    s = res["summary"]
    sep = res["identity_separation"]
    modes = list(next(iter(sep.values()))["modes"])
    layers = list(res["layers"])
    order = sorted(layers, key=lambda lay: int("".join(c for c in lay if c.isdigit()) or 0))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in res["top_modes"]:
        ls = [lay for lay in order if name in res["layers"][lay]]
        axes[0].plot(ls, [100 * res["layers"][lay][name]["all"]["idf1"] for lay in ls],
                     marker="o", label=f"{name} IDF1", color=colour.get(name))
        axes[0].plot(ls, [100 * res["layers"][lay][name]["all"]["hota"] for lay in ls],
                     marker="s", ls="--", label=f"{name} HOTA", color=colour.get(name))
    if "motion only" in s:
        mo = s["motion only"]["all"]
        axes[0].axhline(100 * mo["idf1"], color="k", lw=1, label="motion only IDF1")
        axes[0].axhline(100 * mo["hota"], color="k", lw=1, ls="--",
                        label="motion only HOTA")
    axes[0].set_title("Tracking, all runs combined (threshold tuned per layer)")
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=7)
    for name in modes:
        ls = [lay for lay in order if lay in sep]
        axes[1].plot(ls, [sep[lay]["modes"][name]["all"]["auc"] for lay in ls], marker="o",
                     label=name, color=colour.get(name))
    axes[1].set_title("Identity-separation AUC")
    axes[1].legend(fontsize=6, ncol=2)
    return fig


def _cost(res: dict[str, Any], plt, colour: dict[str, Any]):
    """IDF1 against ms/frame per mode."""
    s = res["summary"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in s.items():
        a = e["all"]
        if e["tuned_threshold"] is None:
            continue
        ax.scatter(a["ms_per_frame"], 100 * a["idf1"], color=colour.get(name))
        ax.annotate(f"{name} ({a['embedding_dim']}-d)", (a["ms_per_frame"], 100 * a["idf1"]),
                    fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ms per frame (pooling + association), log")
    ax.set_ylabel("IDF1 % (all runs)")
    ax.set_title("Accuracy against cost")
    return fig
