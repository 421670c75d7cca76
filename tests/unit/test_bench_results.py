"""Every benchmark prints its report and, with --record, appends it to bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import results


def test_a_report_is_printed_and_appended_only_when_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "RESULTS.md"
    target.write_text("# Benchmark results\n")
    monkeypatch.setattr(results, "RESULTS", target)
    results.publish("## Run 1\n\n| a | 1 |\n", record=False)
    assert capsys.readouterr().out == "## Run 1\n\n| a | 1 |\n\n"
    assert target.read_text() == "# Benchmark results\n"
    results.publish("## Run 2\n", record=True)
    results.publish("## Run 3\n", record=True)
    assert target.read_text() == "# Benchmark results\n\n## Run 2\n\n## Run 3\n"
