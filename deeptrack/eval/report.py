"""Evaluation results: per-sequence rows and a combined row, as dicts or a text table."""

from __future__ import annotations

from dataclasses import dataclass

from deeptrack.eval.clear import ClearMetrics, IdentityMetrics
from deeptrack.eval.hota import HotaMetrics

COMBINED = "COMBINED"

# (heading, key in SequenceMetrics.to_dict(), shown in percent)
_COLUMNS = (
    ("HOTA", "hota", True), ("DetA", "deta", True), ("AssA", "assa", True),
    ("LocA", "loca", True), ("MOTA", "mota", True), ("MOTP", "motp", True),
    ("IDF1", "idf1", True), ("IDP", "idp", True), ("IDR", "idr", True),
    ("GT", "gt", False), ("TP", "tp", False), ("FP", "fp", False), ("FN", "fn", False),
    ("IDSW", "idsw", False), ("Frag", "frag", False), ("MT", "mt", False),
    ("PT", "pt", False), ("ML", "ml", False),
)


@dataclass(frozen=True)
class SequenceMetrics:
    """All metrics of one sequence (or of the combined sequences).

    Attributes:
        name: the sequence name, or ``COMBINED``.
        benchmark: the preprocessing rules used (``MOT17`` ...); for the
            combined row the rules of its sequences joined by ``+`` if mixed.
        clear: CLEAR MOT counts.
        identity: identity counts.
        hota: HOTA per alpha.
    """

    name: str
    benchmark: str
    clear: ClearMetrics
    identity: IdentityMetrics
    hota: HotaMetrics

    def to_dict(self) -> dict[str, float | int | str]:
        """One flat row: ratios as fractions in [0, 1] (MOTA may be negative), counts as ints.

        Keys: name, benchmark, hota, deta, assa, loca, detre, detpr, assre, asspr,
        mota, motp, moda, recall, precision, tp, fp, fn, idsw, frag, mt, pt, ml,
        gt, gt_ids, idf1, idp, idr, idtp, idfp, idfn. MOTP is the mean IoU of the
        matches (the official definition; motmetrics reports 1 - that).
        """
        return {"name": self.name, "benchmark": self.benchmark, **self.hota.to_dict(),
                **self.clear.to_dict(), **self.identity.to_dict()}

    @classmethod
    def combine(cls, parts: list[SequenceMetrics], name: str = COMBINED) -> SequenceMetrics:
        """Combine rows the official way: counts summed, never ratios averaged."""
        benchmarks = sorted({p.benchmark for p in parts})
        return cls(
            name, "+".join(benchmarks),
            ClearMetrics.combine([p.clear for p in parts]),
            IdentityMetrics.combine([p.identity for p in parts]),
            HotaMetrics.combine([p.hota for p in parts]),
        )


@dataclass(frozen=True)
class EvalReport:
    """Rows per sequence plus the combined row.

    Attributes:
        sequences: one row per sequence, in evaluation order.
        combined: the combined row (name ``COMBINED``).
    """

    sequences: tuple[SequenceMetrics, ...]
    combined: SequenceMetrics

    def __getitem__(self, name: str) -> SequenceMetrics:
        """Return the row of sequence ``name`` (or ``COMBINED``)."""
        for row in (*self.sequences, self.combined):
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """``{"sequences": {name: row}, "combined": row}`` with rows from ``to_dict``."""
        return {"sequences": {s.name: s.to_dict() for s in self.sequences},
                "combined": self.combined.to_dict()}

    def table(self) -> str:
        """Return a fixed-width text table; ratios in percent, one row per sequence."""
        rows = [*self.sequences, self.combined]
        width = max(len("Sequence"), *(len(r.name) for r in rows))
        cells = [[h for h, _, _ in _COLUMNS]]
        for r in rows:
            d = r.to_dict()
            cells.append([f"{100 * d[k]:.3f}" if pct else str(d[k]) for _, k, pct in _COLUMNS])
        widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
        names = ["Sequence", *(r.name for r in rows)]
        lines = [
            f"{n:<{width}}  " + "  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True))
            for n, c in zip(names, cells, strict=True)
        ]
        return "\n".join(lines)
