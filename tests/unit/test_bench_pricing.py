"""bench/pricing measures every step of the pricing work, in both modes, and adds them up."""

from __future__ import annotations

import re

from bench.pricing import run


def test_the_pricing_benchmark_reports_each_step_and_the_sum() -> None:
    report = run(number=3)
    rows = {name: (plain, extras) for name, plain, extras in re.findall(
        r"^\| ([a-z][^|]+?) \| ([\d.]+) \| ([\d.]+) \|$", report, re.M)}
    assert set(rows) == {"body parsed and validated", "item priced, with the extras chosen",
                         "stay rules checked", "quote as event data, checked and encoded",
                         "answer encoded"}
    assert all(float(extras) > 0 for _, extras in rows.values())
    together = re.search(
        r"\*\*together\*\* \| \*\*([\d.]+)\*\* \| \*\*([\d.]+)\*\* \(\+?(-?[\d.]+)\)", report)
    assert together is not None
    plain, extras, difference = (float(x) for x in together.groups())
    assert plain > 0 and extras > 0
    assert abs(extras - plain - difference) < 0.11  # the difference is of the two sums
