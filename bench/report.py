"""The one table a run prints, and the same results as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass
class Row:
    """One line of the table: a measured rate, its latency, and its share of a baseline."""

    scenario: str
    rate: float
    unit: str
    p50_ms: float | None
    p99_ms: float | None
    requests: int = 0
    baseline: str | None = None
    ratio: float | None = None
    target: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def met(self) -> str:
        """yes / no against the target, FAILED when the numbers are not of successful work."""
        if self.problems:
            return "FAILED"
        if self.target is None or self.ratio is None:
            return ""
        return "yes" if self.ratio >= self.target else "no"


def relate(row: Row, baseline: Row, target: float) -> None:
    """Set the row's share of `baseline` (measured in the same run) and its target."""
    row.baseline = baseline.scenario
    row.target = target
    if row.problems:
        return  # a share of failed requests would mislead
    if baseline.rate > 0 and not baseline.problems:
        row.ratio = row.rate / baseline.rate
    else:
        row.problems.append(f"no valid {baseline.scenario} rate to compare with")


_HEADER = ("scenario", "rate", "unit", "p50 ms", "p99 ms", "ratio", "of", "target", "met?")
_RIGHT = {1, 3, 4, 5, 7}


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.scenario,
        f"{row.rate:,.0f}",
        row.unit,
        _ms(row.p50_ms),
        _ms(row.p99_ms),
        f"{row.ratio:.1%}" if row.ratio is not None else "",
        row.baseline or "",
        f">= {row.target:.0%}" if row.target is not None else "",
        row.met,
    )


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else ""


def table(rows: list[Row]) -> str:
    """The rows as an aligned plain-text table."""
    lines = [_HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    rendered = [
        "  ".join(
            cell.rjust(width) if i in _RIGHT else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    rendered.insert(1, "-" * len(rendered[0]))
    return "\n".join(rendered)


def notes(rows: list[Row], extra: list[str]) -> list[str]:
    """Every row's problems, then the run's other notes."""
    return [f"{row.scenario}: {problem}" for row in rows for problem in row.problems] + extra


def write_json(rows: list[Row], run: dict[str, Any], extra: list[str]) -> Path:
    """bench/results/latest.json: the settings of the run, every row, and the notes."""
    document = {
        **run,
        "rows": [{**asdict(row), "met": row.met} for row in rows],
        "notes": notes(rows, extra),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return RESULTS
