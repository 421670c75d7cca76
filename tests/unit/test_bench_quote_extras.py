"""bench/quote_extras reports each mode's medians and what it adds to the first mode,
round by round."""

from __future__ import annotations

import argparse
import re

from bench.quote_extras import GOAL_MODES, MODES, report


def _rows(text: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines() if line.startswith("| ") and "---" not in line)}


def test_the_report_gives_medians_and_the_round_by_round_difference() -> None:
    args = argparse.Namespace(rules=True, goal=False, holds=False, rounds=3, seconds=5,
                              clients=32, items=200)
    measured = {
        "no extras": [(4_000, 7.0, 200.0), (3_000, 9.0, 300.0), (4_200, 6.0, 190.0)],
        "one extra": [(3_600, 8.0, 260.0), (2_900, 9.5, 310.0), (3_700, 7.0, 205.0)],
        "three extras": [(3_400, 9.0, 215.0), (2_500, 11.0, 380.0), (3_500, 8.0, 300.0)],
    }
    text = report(args, measured)
    rows = _rows(text)
    assert set(rows) == {"quotes", *MODES}
    assert rows["no extras"] == ["4,000", "7.00", "200.0", "+0.0 (+0.0 %)", "+0.0 %"]
    # Added round by round: +60, +10, +15, so +15 µs, where the medians of the columns
    # apart (260 - 200) would say +60; the shares 30, 3.3 and 7.9 %: 7.9 %. The p50s
    # 8/7, 9.5/9, 7/6: +14.3, +5.6, +16.7 %: +14.3 %.
    assert rows["one extra"] == ["3,600", "8.00", "260.0", "+15.0 (+7.9 %)", "+14.3 %"]
    # +15, +80, +110: +80 (the columns apart: 300 - 200 = +100); the shares 7.5, 26.7
    # and 57.9 %: 26.7 %. The p50s: +28.6, +22.2, +33.3 %: +28.6 %.
    assert rows["three extras"] == ["3,400", "9.00", "300.0", "+80.0 (+26.7 %)", "+28.6 %"]
    assert ("Round by round, one extra against no extras: p50 +14.3, +5.6, +16.7 %;"
            " service CPU added +60, +10, +15 µs.") in text
    assert ("Round by round, three extras against no extras: p50 +28.6, +22.2, +33.3 %;"
            " service CPU added +15, +80, +110 µs.") in text
    assert re.search(r"`python -m bench\.quote_extras --rules` \(3 rounds of 5 s", text)
    assert "rules and discounts set" in text


def test_the_report_says_when_the_rules_are_unset() -> None:
    args = argparse.Namespace(rules=False, goal=False, holds=False, rounds=1, seconds=2,
                              clients=8, items=10)
    measured = {mode: [(1_000, 1.0, 100.0)] for mode in MODES}
    text = report(args, measured)
    assert "`python -m bench.quote_extras` (1 rounds" in text
    assert "rules and discounts unset" in text
    assert _rows(text)["three extras"][-2:] == ["+0.0 (+0.0 %)", "+0.0 %"]


def test_the_goal_compares_holds_with_the_plain_ones() -> None:
    args = argparse.Namespace(rules=False, goal=True, holds=True, rounds=2, seconds=5,
                              clients=32, items=200)
    measured = {"plain": [(1_500, 20.0, 600.0), (1_400, 22.0, 640.0)],
                "three extras and rules": [(1_300, 22.0, 660.0), (1_200, 25.3, 720.0)]}
    assert list(measured) == list(GOAL_MODES)
    text = report(args, measured)
    rows = _rows(text)
    assert set(rows) == {"holds", *GOAL_MODES}
    assert rows["holds"][:3] == ["holds/s", "p50 ms", "service CPU µs per hold"]
    # +60 and +80 µs (+10 and +12.5 %); p50 +10 and +15 %: the medians of two, halfway.
    assert rows["three extras and rules"] == ["1,250", "23.65", "690.0", "+70.0 (+11.2 %)",
                                              "+12.5 %"]
    assert "`python -m bench.quote_extras --goal --holds` (2 rounds" in text
    assert "set before each round of extras, cleared before each plain round" in text
