"""bench/RESULTS.md, where each benchmark's `--record` appends its report."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(report: str, *, record: bool) -> None:
    """Print `report`; with `record`, also append it to RESULTS.md, after a blank line."""
    print(report)
    if record:
        with RESULTS.open("a") as results:
            results.write("\n" + report)
