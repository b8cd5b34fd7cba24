"""What the numbers say: statements computed from the results dict, never typed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np

from study.common import pct

#: A tracking difference counts as consistent when at most this many runs disagree in sign.
MAX_DISSENT = 1


def ranks(values: list[float]) -> np.ndarray:
    """1-based ranks, highest value first; ties share their average rank."""
    v = -np.asarray(values, np.float64)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for x in np.unique(v):  # average the ranks of tied values
        tied = v == x
        r[tied] = r[tied].mean()
    return r


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN below 3 items."""
    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def auc_all(res: dict[str, Any], backbone: str, mode: str, adaptation: str) -> float:
    return res["identity_separation"][backbone]["modes"][mode][adaptation]["all"]["auc"]


def shared_pooling_modes(res: dict[str, Any], a: str, b: str) -> list[str]:
    """The pooling modes both backbones ran on their main layer, in study order."""
    def main_modes(name: str) -> list[str]:
        spec = next(x for x in res["backbones"] if x["name"] == name)
        return [m["name"] for m in spec["modes"] if m["layer"] == spec["layer"]]

    other = set(main_modes(b))
    return [m for m in main_modes(a) if m in other]


def ranking_comparison(res: dict[str, Any], a: str = "mobilenet_v2",
                       b: str = "osnet_roi") -> dict[str, Any] | None:
    """Rank the shared pooling modes by all-pairs AUC on two backbones; their Spearman rho."""
    names = {x["name"] for x in res["backbones"]}
    if a not in names or b not in names:
        return None
    modes = shared_pooling_modes(res, a, b)
    if len(modes) < 2:
        return None
    out: dict[str, Any] = {"modes": modes, "by_adaptation": {}}
    for ad in res["adaptations"]:
        va = [auc_all(res, a, m, ad) for m in modes]
        vb = [auc_all(res, b, m, ad) for m in modes]
        out["by_adaptation"][ad] = {
            "rank_a": ranks(va).tolist(), "rank_b": ranks(vb).tolist(),
            "spearman": spearman(va, vb),
            "top3_a": [modes[i] for i in np.argsort(-np.asarray(va), kind="stable")[:3]],
            "top3_b": [modes[i] for i in np.argsort(-np.asarray(vb), kind="stable")[:3]]}
    return out


def tracking_row(res: dict[str, Any], backbone: str, mode: str,
                 adaptation: str) -> dict[str, Any] | None:
    return next((r for r in res["tracking"] if r["backbone"] == backbone and r["mode"] == mode
                 and r["adaptation"] == adaptation), None)


def motion_row(res: dict[str, Any], preset: str) -> dict[str, Any] | None:
    return next((r for r in res["tracking"] if r["backbone"] == "-"
                 and preset in r["lifecycle"].split(", ")), None)


def run_deltas(after: dict[str, Any], before: dict[str, Any], key: str = "idf1") -> list[float]:
    """Per run ``after - before`` of ``key`` (runs in ``after``'s order)."""
    return [after["runs"][k][key] - before["runs"][k][key] for k in after["runs"]]


def verdict(deltas: list[float]) -> str:
    """'helps' or 'hurts' when all runs but at most MAX_DISSENT move with the mean, else 'mixed'.

    A run that does not move counts against the verdict: one run that moved
    while the others stayed is 'mixed', not evidence.
    """
    if not any(deltas):
        return "no change"
    mean = float(np.mean(deltas))
    need = len(deltas) - MAX_DISSENT
    if mean > 0 and sum(d > 0 for d in deltas) >= need:
        return "helps"
    if mean < 0 and sum(d < 0 for d in deltas) >= need:
        return "hurts"
    return "mixed"


def _signed(x: float) -> str:
    return f"{100 * x:+.2f}"


def adaptation_auc_lines(res: dict[str, Any]) -> list[str]:
    """Where adaptation raises or lowers the ground-truth AUC, per backbone."""
    out = []
    seqs = list(res["identity_separation"][res["backbones"][0]["name"]]["pairs"]) \
        if res["backbones"] else []
    for ad in res["adaptations"]:
        if ad == "none" or "none" not in res["adaptations"]:
            continue
        for b in res["backbones"]:
            modes = res["identity_separation"][b["name"]]["modes"]
            gains = [modes[m][ad]["all"]["auc"] - modes[m]["none"]["all"]["auc"] for m in modes]
            per_seq = {s: [modes[m][ad]["sequences"][s]["auc"]
                           - modes[m]["none"]["sequences"][s]["auc"] for m in modes]
                       for s in seqs}
            seq_text = "; ".join(
                f"{s}: {sum(g > 0 for g in v)}/{len(v)} up, {min(v):+.3f} to {max(v):+.3f}"
                for s, v in per_seq.items())
            out.append(
                f"AUC, {b['label']}, {ad} vs none: all-pairs AUC up for {sum(g > 0 for g in gains)}"
                f" of {len(gains)} modes (gain {min(gains):+.3f} to {max(gains):+.3f}, mean "
                f"{np.mean(gains):+.3f}); per sequence {seq_text}.")
    return out


def adaptation_tracking_lines(res: dict[str, Any]) -> list[str]:
    """Where adaptation moves the tracking metrics, per tracked mode."""
    out = []
    for ad in res["adaptations"]:
        if ad == "none" or "none" not in res["adaptations"]:
            continue
        for b in res["backbones"]:
            parts, verdicts = [], []
            for mode in res["tracked_modes"].get(b["name"], []):
                on, off = tracking_row(res, b["name"], mode, ad), tracking_row(
                    res, b["name"], mode, "none")
                if on is None or off is None:
                    continue
                d = run_deltas(on, off)
                dh = run_deltas(on, off, "hota")
                v = verdict(d)
                verdicts.append(v)
                parts.append(f"{mode}: {v} (IDF1 {_signed(float(np.mean(d)))} mean, per run "
                             + ", ".join(_signed(x) for x in d)
                             + f"; HOTA {_signed(float(np.mean(dh)))})")
            if parts:
                out.append(f"Tracking, {b['label']}, {ad} vs none: " + "; ".join(parts) + ".")
    return out


def backbone_lines(res: dict[str, Any]) -> list[str]:
    """Best tracked row per backbone against motion only on the same lifecycle."""
    out = []
    for b in res["backbones"]:
        rows = [r for r in res["tracking"] if r["backbone"] == b["name"]]
        motion = motion_row(res, b["preset"].split("/")[-1])
        if not rows or motion is None:
            continue
        best = max(rows, key=lambda r: (r["idf1"]["mean"], r["hota"]["mean"]))
        d = run_deltas(best, motion)
        out.append(
            f"{b['label']} ({b['preset']} lifecycle): best tracked {best['mode']} with "
            f"adaptation {best['adaptation']}, mean IDF1 {pct(best['idf1']['mean'])} / HOTA "
            f"{pct(best['hota']['mean'])} against motion only {pct(motion['idf1']['mean'])} / "
            f"{pct(motion['hota']['mean'])}; IDF1 per run vs motion "
            + ", ".join(_signed(x) for x in d) + f" ({verdict(d)}).")
        top = res["tracked_modes"][b["name"]]
        auc_best = top[0] if top else None
        if auc_best is not None and auc_best != best["mode"]:
            out.append(f"{b['label']}: the mode with the highest AUC (mean over the adaptations: "
                       f"{auc_best}) is not the best tracked one ({best['mode']}).")
    return out


def ranking_lines(res: dict[str, Any]) -> list[str]:
    cmp = ranking_comparison(res)
    if cmp is None:
        return []
    out = []
    for ad, c in cmp["by_adaptation"].items():
        rho = c["spearman"]
        word = ("matches closely" if rho >= 0.8 else "matches loosely" if rho >= 0.4
                else "does not match")
        out.append(
            f"Ranking of pooling modes by AUC, OSNet RoI conv5 vs MobileNetV2 (adaptation {ad}, "
            f"{len(cmp['modes'])} modes): Spearman rho {rho:.2f}, so the ranking {word}; top 3 "
            f"MobileNetV2 {', '.join(c['top3_a'])}; OSNet RoI {', '.join(c['top3_b'])}.")
    return out


def conclusion(res: dict[str, Any]) -> list[str]:
    """Every computed statement of the report's conclusion."""
    return (adaptation_auc_lines(res) + adaptation_tracking_lines(res) + ranking_lines(res)
            + backbone_lines(res))


def caveats(res: dict[str, Any]) -> list[str]:
    n_runs = len({(r["sequence"], r["det_file"]) for r in res["runs"]})
    return [
        (f"{n_runs} tracking runs ({len(res['settings']['frame_rates'])} sequences x detection "
         "files): a difference smaller than the per-run spread in the tracking table is not "
         "evidence. 'helps'/'hurts' above require the mean to move that way and every run but "
         f"at most {MAX_DISSENT} to move with it (a run that does not move counts against); "
         "anything else is 'mixed'."),
        ("AUC is measured on ground-truth boxes, and the online adapter is fed those boxes in "
         "frame order; in the tracker it sees the detections that pass min_score_quantile "
         "instead. AUC compares pairs at most "
         f"{res['settings']['pair_window_frames']} frames apart, while tracking also needs "
         "matches after long gaps and is dominated by motion where people do not cross."),
        ("Tracked modes are the best by AUC (averaged over the adaptations studied) plus the "
         "preset's own pooling; the other modes were not tracked."),
        ("No threshold was tuned: the fused association's appearance cost is calibrated online "
         "per sequence (configs/fused.yaml), so every mode runs with the preset's settings."),
    ]
