"""CPU time that processes spend during a measurement, read from Linux's /proc.

On a 2-core machine the service, PostgreSQL and the load generator share the cores: what
each spends per operation says where a throughput limit comes from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name


def _children(pid: int, stats: dict[int, list[str]]) -> set[int]:
    """``pid`` and its descendants."""
    family = {pid}
    while True:
        more = {p for p, s in stats.items() if int(s[1]) in family} - family
        if not more:
            return family
        family |= more


def _all() -> dict[int, list[str]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    return stats


def _postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


Groups = dict[str, Callable[[dict[int, list[str]]], Iterable[int]]]


def groups(processes: dict[str, int | None], this: str) -> Groups:
    """Labelled process trees (pid None: left out), PostgreSQL's processes, and this
    process labelled ``this``."""
    chosen: Groups = {label: (lambda stats, pid=pid: _children(pid, stats))
                      for label, pid in processes.items() if pid is not None}
    chosen["PostgreSQL"] = lambda stats: [p for p in stats if _postgres(p)]
    chosen[this] = lambda stats: [os.getpid()]
    return chosen


def sample(chosen: Groups) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) so far of each group's processes, by pid, with their
    ended children's (PostgreSQL's postmaster counts its ended backends)."""
    stats = _all()
    return {label: {pid: sum(int(stats[pid][n]) for n in (11, 12, 13, 14)) / _TICKS
                    for pid in pids(stats) if pid in stats}
            for label, pids in chosen.items()}


def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
          ) -> dict[str, float]:
    """CPU seconds each group spent between two samples (a process that ended is lost
    unless its parent is in the group)."""
    return {label: sum(t - before.get(label, {}).get(pid, 0.0) for pid, t in pids.items())
            for label, pids in after.items()}
