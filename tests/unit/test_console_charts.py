"""The console's server-drawn charts and figures: scales, bounds and escaping."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from midas.console.charts import Point, Span, bar_chart, column_chart, days
from midas.console.views import money, percent, when


def _rects(svg: str) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in re.findall(r'(x|y|width|height)="([-\d.]+)"', r)}
            for r in re.findall(r"<rect [^>]*>", svg)]


def test_columns_scale_to_the_largest_and_negatives_hang_below_zero() -> None:
    svg = str(column_chart([Point("a", 10), Point("b", -5), Point("c", 0)], "t",
                           width=300, height=170))
    a, b, c = _rects(svg)
    assert a["height"] == 100.0 and a["y"] == 0.0  # plot height 150, span 15: 10 -> 100
    assert b["y"] == 100.0 and b["height"] == 50.0  # from the zero line down
    assert c["height"] == 0.5  # zero still shows as a hairline
    assert 'class="bar negative"' in svg and svg.count("<rect") == 3
    assert "No data" in str(column_chart([], "t"))


def test_labels_and_titles_are_escaped() -> None:
    svg = str(bar_chart([Point("<script>", 3)], 'a "title"'))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'aria-label="a &#34;title&#34;"' in svg


def test_shares_show_as_percentages_and_never_exceed_the_width() -> None:
    svg = str(bar_chart([Point("car", 0.25), Point("jet", 1.0)], "u", width=420,
                        share=True))
    car, jet = _rects(svg)
    assert jet["width"] == 420 - 110 - 70 and car["width"] == jet["width"] / 4
    assert "25.0 %" in svg and "100.0 %" in svg


def test_a_span_places_instants_and_clamps_those_outside() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    span = Span(start, start + timedelta(days=10), 1000)
    assert span.x(start) == 0 and span.x(start + timedelta(days=5)) == 500
    assert span.x(start - timedelta(days=3)) == 0
    assert span.x(start + timedelta(days=30)) == 1000
    assert days(date(2026, 11, 30), date(2026, 12, 2)) == [date(2026, 11, 30),
                                                          date(2026, 12, 1)]
    assert days(date(2026, 12, 2), date(2026, 12, 2)) == []


def test_figures_are_formatted_from_minor_units() -> None:
    assert money(123_456_78, "USD") == "123,456.78 USD"
    assert money(0, "EUR") == "0.00 EUR" and money(-5, "USD") == "-0.05 USD"
    assert money(None) == "–"
    assert percent("0.1234") == "12.3 %" and percent(None) == "–"
    assert when("2026-11-01T10:00:00+01:00") == "2026-11-01 09:00 UTC"
    assert when("2026-11-01T10:00:00Z") == "2026-11-01 10:00 UTC" and when(None) == "–"
