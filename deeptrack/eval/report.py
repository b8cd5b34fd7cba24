"""Evaluation results: per-sequence rows and a combined row, as dicts or a text table.

:func:`render_table` is the one text-table renderer: ``deeptrack eval``,
``compare`` and ``demo`` all print through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deeptrack.eval.clear import ClearMetrics, IdentityMetrics
from deeptrack.eval.hota import HotaMetrics

COMBINED = "COMBINED"



@dataclass(frozen=True)
class Column:
    """One column of a text table.

    Attributes:
        heading: the column's title.
        key: the key of the value in each row mapping.
        percent: the value is a fraction, shown times 100.
        spec: format spec of the (scaled) value, e.g. ``.2f``; empty: ``str``.
    """

    heading: str
    key: str
    percent: bool = False
    spec: str = ""

    def cell(self, row: Mapping[str, Any]) -> str:
        """Return the formatted value of this column in ``row``."""
        value = row[self.key]
        return format(100 * value if self.percent else value, self.spec)


def pct(heading: str, key: str, digits: int = 2) -> Column:
    """Return a column of fractions shown in percent with ``digits`` decimals."""
    return Column(heading, key, percent=True, spec=f".{digits}f")


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *,
                 rule: bool = False) -> str:
    """Return a fixed-width text table: first column left-aligned, the others right-aligned.

    Args:
        rows: one mapping per row, holding every column's key.
        columns: the columns, in order.
        rule: draw a line of dashes under the headings.
    """
    cells = [[c.heading for c in columns], *([c.cell(r) for c in columns] for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                       for i, (v, w) in enumerate(zip(line, widths, strict=True))).rstrip()
             for line in cells]
    if rule:
        lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


#: The columns of :meth:`EvalReport.table`, keys of :meth:`SequenceMetrics.to_dict`.
EVAL_COLUMNS = (
    Column("Sequence", "name"),
    *(pct(h, k, 3) for h, k in (("HOTA", "hota"), ("DetA", "deta"), ("AssA", "assa"),
                                 ("LocA", "loca"), ("MOTA", "mota"), ("MOTP", "motp"),
                                 ("IDF1", "idf1"), ("IDP", "idp"), ("IDR", "idr"))),
    *(Column(h, k) for h, k in (("GT", "gt"), ("TP", "tp"), ("FP", "fp"), ("FN", "fn"),
                                 ("IDSW", "idsw"), ("Frag", "frag"), ("MT", "mt"),
                                 ("PT", "pt"), ("ML", "ml"))),
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
        return render_table([r.to_dict() for r in (*self.sequences, self.combined)],
                            EVAL_COLUMNS)
