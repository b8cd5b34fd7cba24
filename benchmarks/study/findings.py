"""The report's findings, computed from the numbers so that a rerun rewrites them consistently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from study.common import BASELINE, GLOBAL_POOLING, SPATIAL_POOLING, pct


@dataclass(frozen=True)
class _Ranking:
    """The appearance modes ranked on the view the findings speak of."""

    s: dict[str, Any]  # the results' summary
    metric: str
    appearance: list[str]  # the modes with appearance
    view: str  # "held_out" when every mode has held-out runs, else "all"
    where: str  # the view in words
    best: str
    second: str

    @property
    def b(self) -> dict[str, Any]:
        return self.s[self.best][self.view]

    @property
    def c(self) -> dict[str, Any]:
        return self.s[self.second][self.view]


def _rank(res: dict[str, Any]) -> _Ranking | None:
    s = res["summary"]
    metric = res["settings"]["tuning_metric"]
    appearance = [m for m in s if s[m]["tuned_threshold"] is not None]
    if not appearance:
        return None
    view = "held_out" if all(s[m]["held_out"] for m in s) else "all"
    where = ("on the runs not used for tuning" if view == "held_out" else "over all runs")
    order = sorted(appearance, key=lambda m: (s[m][view][metric], s[m][view]["hota"]),
                   reverse=True)
    return _Ranking(s, metric, appearance, view, where, order[0],
                    order[1] if len(order) > 1 else order[0])


def conclusion(res: dict[str, Any]) -> list[str]:
    """Findings computed from the numbers, so that a rerun rewrites them consistently."""
    ranking = _rank(res)
    if ranking is None:
        return []
    out: list[str] = []
    for finding in (_ranking, _against_avg, _against_motion, _spatial_against_global,
                    _threshold_against_mode, _cross_check, _box_cells, _separation, _layer_axis):
        out += finding(res, ranking)
    return out


def _ranking(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """The best mode and its lead over the second."""
    metric, where, best, second, b, c = ranking.metric, ranking.where, ranking.best, ranking.second, ranking.b, ranking.c
    out: list[str] = []
    out.append(f"Best appearance mode by {metric.upper()} {where} ({b['runs']} sequence x "
           f"detection-file runs, counts summed): **{best}** (IDF1 {pct(b['idf1'])}, HOTA "
           f"{pct(b['hota'])}, MOTA {pct(b['mota'])}; {b['embedding_dim']}-d, "
           f"{b['ms_per_frame']:.1f} ms/frame), ahead of {second} by "
           f"{100 * (b['idf1'] - c['idf1']):+.2f} IDF1 and {100 * (b['hota'] - c['hota']):+.2f} "
           f"HOTA.")
    return out


def _against_avg(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """The best mode against DeepSORT-style average pooling."""
    s, view, best, b = ranking.s, ranking.view, ranking.best, ranking.b
    out: list[str] = []
    if "avg" in s and best != "avg":
        a = s["avg"][view]
        out.append(f"Against avg pooling (DeepSORT-style global average): "
                   f"{100 * (b['idf1'] - a['idf1']):+.2f} IDF1, "
                   f"{100 * (b['hota'] - a['hota']):+.2f} HOTA.")
    return out


def _against_motion(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """Appearance modes against no appearance at all."""
    s, appearance, view, where, b = ranking.s, ranking.appearance, ranking.view, ranking.where, ranking.b
    out: list[str] = []
    if "motion only" in s:
        mo = s["motion only"][view]
        beat_idf1 = [m for m in appearance if s[m][view]["idf1"] > mo["idf1"]]
        beat_hota = [m for m in appearance if s[m][view]["hota"] > mo["hota"]]
        out.append(f"Against motion only (no appearance; IDF1 {pct(mo['idf1'])}, HOTA "
                   f"{pct(mo['hota'])}): the best mode is {100 * (b['idf1'] - mo['idf1']):+.2f} "
                   f"IDF1, {100 * (b['hota'] - mo['hota']):+.2f} HOTA, "
                   f"{b['idsw'] - mo['idsw']:+d} ID switches. "
                   f"{len(beat_idf1)} of {len(appearance)} appearance modes beat motion only on "
                   f"IDF1 {where}, {len(beat_hota)} on HOTA.")
    return out


def _spatial_against_global(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """Modes that keep a spatial layout against global pooling."""
    s, appearance, view, where, best = ranking.s, ranking.appearance, ranking.view, ranking.where, ranking.best
    out: list[str] = []
    groups = {"global": [m for m in appearance if m.split()[0] in GLOBAL_POOLING],
              "spatial": [m for m in appearance if m.split()[0] in SPATIAL_POOLING]}
    if groups["global"] and groups["spatial"]:
        g_best = max(groups["global"], key=lambda m: s[m][view]["idf1"])
        sp_worst = min(groups["spatial"], key=lambda m: s[m][view]["idf1"])
        margin = 100 * (s[sp_worst][view]["idf1"] - s[g_best][view]["idf1"])
        hota_margin = 100 * (min(s[m][view]["hota"] for m in groups["spatial"])
                             - max(s[m][view]["hota"] for m in groups["global"]))
        keys = {(r["sequence"], r["det_file"]) for r in res["runs"] if r["mode"] == best}
        tune = tuple(res["settings"]["tuning_run"].split("/", 1))
        if view == "held_out":
            keys.discard(tune)
        layer = res["settings"]["layer"]

        def idf1(mode: str, k: tuple) -> float:
            return next(r["idf1"] for r in res["runs"] if r["mode"] == mode
                        and (r["sequence"], r["det_file"]) == k and r["layer"] == layer
                        and r["max_cosine_distance"] == s[mode]["tuned_threshold"])

        wins = sum(min(idf1(m, k) for m in groups["spatial"])
                   > max(idf1(m, k) for m in groups["global"]) for k in keys)
        out.append(f"Spatial layouts kept ({', '.join(groups['spatial'])}) against global "
                   f"pooling ({', '.join(groups['global'])}), {where}: the worst spatial mode "
                   f"({sp_worst}) is {margin:+.2f} IDF1 from the best global one ({g_best}), "
                   f"and the worst spatial HOTA {hota_margin:+.2f} from the best global HOTA; "
                   f"every spatial mode beats every global mode on {wins} of {len(keys)} of "
                   f"these runs separately.")
    return out


def _threshold_against_mode(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """Whether the modes differ by more than the threshold moves them."""
    s, appearance, view, b, c = ranking.s, ranking.appearance, ranking.view, ranking.b, ranking.c
    out: list[str] = []
    spread = [100 * s[m][view]["idf1"] for m in appearance]
    moves = [100 * abs(s[m]["fixed"]["0.1"]["idf1"] - s[m]["fixed"]["0.2"]["idf1"])
             for m in appearance]
    tuned_vs_02 = [100 * abs(s[m]["all"]["idf1"] - s[m]["fixed"]["0.2"]["idf1"])
                   for m in appearance]
    gap = 100 * (b["idf1"] - c["idf1"])
    med = float(np.median(moves))
    out.append(f"Threshold against mode: the tuned IDF1 of all appearance modes spans "
               f"{min(spread):.2f} to {max(spread):.2f} ({max(spread) - min(spread):.2f} points); "
               f"moving max_cosine_distance from 0.1 to 0.2 changes a mode's IDF1 (all runs) by "
               f"{min(moves):.2f} to {max(moves):.2f} points (median {med:.2f}), and tuned vs "
               f"0.2 by up to {max(tuned_vs_02):.2f}. The gap between the best two modes "
               f"({gap:.2f}) is " + ("larger" if gap > med else "smaller")
               + " than the median threshold effect: "
               + ("the winner is ahead by more than the threshold setting moves."
                  if gap > med else
                  "the top modes are not separated beyond what the threshold setting moves."))
    return out


def _cross_check(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """deep-sort-realtime against deeptrack's avg where their frame counts agree."""
    s = ranking.s
    out: list[str] = []
    base = res.get("baseline", {})
    avg_thr = s.get("avg", {}).get("tuned_threshold")
    if base and avg_thr is not None:
        runs = res["runs"]
        fps = res["settings"]["frame_rates"]
        ref = [r for r in runs if r["mode"] == "avg" and r["max_cosine_distance"] == avg_thr
               and r["layer"] == res["settings"]["layer"]]
        pairs = []
        for r in ref:
            if fps.get(r["sequence"]) != 30:
                continue
            o = next((x for x in runs if x["mode"] == BASELINE and x["sequence"] == r["sequence"]
                      and x["det_file"] == r["det_file"] and x["max_cosine_distance"] == avg_thr),
                     None)
            if o is not None:
                pairs.append(max(abs(o[k] - r[k]) for k in ("idf1", "hota", "mota")))
        if pairs:
            out.append(f"Cross-check: on the 30 fps runs (where its frame counts equal ours) "
                       f"deep-sort-realtime fed the same avg vectors at the same threshold "
                       f"differs from deeptrack's avg by at most {100 * max(pairs):.2f} points of "
                       f"IDF1/HOTA/MOTA ({len(pairs)} runs).")
    return out


def _box_cells(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """How many feature cells a person spans, and the AUC spread per layer."""
    cells = res.get("gt_box_cells")
    out: list[str] = []
    if cells:
        out.append("Box size in feature cells (median ground-truth width x height, at "
                   f"image scale {res['settings']['image_scale']}): " + "; ".join(
                       f"{seq}: " + ", ".join(f"{lay} {v[lay][0]:.1f} x {v[lay][1]:.1f}"
                                              for lay in v if isinstance(v[lay], list))
                       for seq, v in cells.items())
                   + ". Where a person spans only a few cells, the 7 x 7 RoI map interpolates "
                     "a handful of vectors, which leaves the pooling modes little to differ on.")
        spreads = []
        for lay, v in res["identity_separation"].items():
            aucs = [m["all"]["auc"] for name, m in v["modes"].items() if "PCA" not in name]
            if aucs:
                spreads.append(f"{lay} {min(aucs):.3f}-{max(aucs):.3f}")
        if spreads:
            out.append("AUC range across pooling modes (PCA aside) per layer: "
                       + ", ".join(spreads) + ".")
    return out


def _separation(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """Identity separation on ground-truth boxes, and the best layer per mode."""
    layer = res["settings"]["layer"]
    sep = res["identity_separation"].get(layer, {}).get("modes", {})
    out: list[str] = []
    if sep:
        by_auc = sorted(sep, key=lambda m: sep[m]["all"]["auc"], reverse=True)
        out.append(f"Identity separation on ground-truth boxes ({layer}, no tracking): AUC "
                   f"{sep[by_auc[-1]]['all']['auc']:.3f} ({by_auc[-1]}) to "
                   f"{sep[by_auc[0]]['all']['auc']:.3f} ({by_auc[0]})"
                   + (f"; avg {sep['avg']['all']['auc']:.3f}" if "avg" in sep else "") + ".")
        layers = res["identity_separation"]
        if len(layers) > 1:
            best_layer = {m: max(layers, key=lambda lay: layers[lay]["modes"][m]["all"]["auc"])
                          for m in sep}
            counts = {lay: sum(v == lay for v in best_layer.values()) for lay in layers}
            out.append("Layer with the highest AUC, counted over modes: "
                       + ", ".join(f"{lay} {n}" for lay, n in counts.items()) + ".")
    return out


def _layer_axis(res: dict[str, Any], ranking: _Ranking) -> list[str]:
    """The top modes across layers."""
    out: list[str] = []
    if res.get("layers"):
        for name in res.get("top_modes", []):
            per = {lay: v[name]["all"] for lay, v in res["layers"].items() if name in v}
            if len(per) > 1:
                top = max(per, key=lambda lay: per[lay]["idf1"])
                out.append(f"Layer axis, {name} (all runs): " + ", ".join(
                    f"{lay} IDF1 {pct(v['idf1'])} / HOTA {pct(v['hota'])}"
                    for lay, v in per.items()) + f"; best IDF1 at {top}.")
    return out


def caveats(res: dict[str, Any]) -> list[str]:
    """What limits the conclusion, stated from the run's own settings."""
    st = res["settings"]
    seqs = list(st["frame_rates"])
    out = []
    if st["backbone"] == "mobilenet_v2":
        out.append("The backbone is an ImageNet classifier (MobileNetV2), not a "
                   "re-identification network: its RoI features are generic, and the ranking of "
                   "pooling modes may differ with re-ID features.")
    out.append(f"{len(seqs)} sequence(s) only ({', '.join(seqs)}), frames resized by "
               f"{st['image_scale']} before the backbone; differences of a point or two of "
               f"IDF1 are of the size one threshold step moves (see the tuning table).")
    out.append(f"The threshold is tuned on one run ({st['tuning_run']}), which is also part of "
               f"the 'all' rows; the held-out rows exclude it.")
    out.append("PCA is fitted on each sequence's own detections (offline, transductive); an "
               "online tracker would need a projection fitted elsewhere. Its vectors are "
               "centred, so their cosine distances are on another scale (up to 2).")
    if any(m["name"] == "flatten+RP512" for m in res["modes"]):
        out.append("flatten+RP512 projects every 62720-d vector through a 62720 x 512 matrix (128 MB) "
                   "inside Tracker.update, which dominates its ms/frame; a 1280-d projection "
                   "(2.5 x the matrix) was left out of the default modes for that reason.")
    out.append("ms/frame is measured on a shared machine with other jobs running; compare "
               "orders of magnitude, not single milliseconds.")
    return out
