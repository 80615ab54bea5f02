"""A benchmark figure, its baseline from the same run, and the goal it is judged by."""

from __future__ import annotations

import operator
import statistics
from dataclasses import asdict, dataclass
from typing import Any

_COMPARE = {">=": operator.ge, "<=": operator.le}


@dataclass
class Figure:
    figure: str
    value: float
    unit: str
    baseline: float | None
    baseline_label: str
    # e.g. ">= 2000" on the value, "ratio >= 0.5", or "value - baseline <= 250" (in the
    # figure's unit); several joined by "; "
    goal: str

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def meets_goal(self) -> bool:
        for clause in self.goal.split(";"):
            words = clause.split()
            over = None if self.baseline is None else self.value - self.baseline
            subjects = {"": self.value, "ratio": self.ratio, "value - baseline": over}
            subject = subjects[" ".join(words[:-2])]
            op, bound = words[-2], float(words[-1])
            if subject is None or not _COMPARE[op](subject, bound):
                return False
        return True

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        data["meets_goal"] = self.meets_goal
        return data


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of samples, interpolated."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 10) - 1]


def table(figures: list[Figure]) -> str:
    header = ("figure", "value", "baseline (same run)", "ratio", "goal", "meets")
    rows = [header]
    for f in figures:
        baseline = (
            "-" if f.baseline is None else f"{_num(f.baseline)} {f.unit} ({f.baseline_label})"
        )
        rows.append(
            (
                f.figure,
                f"{_num(f.value)} {f.unit}",
                baseline,
                "-" if f.ratio is None else f"{f.ratio:.2f}",
                f.goal,
                "yes" if f.meets_goal else "NO",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
