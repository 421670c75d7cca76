"""`midas` run with a profiler and a census of its heap on signals, for bench/soak.py
--profile.

SIGUSR1 starts cProfile; SIGUSR2 stops it and writes, under MIDAS_PROFILE_DIR, the
profile (`profile-N.prof`, pstats) and a census of the objects the garbage collector
tracks, by type (`heap-N.json`: count and shallow bytes of each), N counting from 1. Two
censuses taken minutes apart show what accumulates. (tracemalloc would say where each
object was allocated, but tracing every allocation slows the service several times over,
too much to keep the soak's load.) cProfile slows the profiled minutes: compare profiles
with profiles, not with unprofiled figures.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

from midas.cli import main

_state: dict[str, object] = {"profile": None, "count": 0}


def census() -> dict[str, list[int]]:
    """{type: [count, shallow bytes]} of every object the collector tracks (frozen
    ones included)."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return {name: [counts[name], sizes[name]] for name in counts}


def _start(_signum: int, _frame: FrameType | None) -> None:
    profile = cProfile.Profile()
    _state["profile"] = profile
    profile.enable()


def _stop(_signum: int, _frame: FrameType | None) -> None:
    profile = _state["profile"]
    if not isinstance(profile, cProfile.Profile):
        return
    profile.disable()
    _state["profile"] = None
    count = int(str(_state["count"])) + 1
    _state["count"] = count
    folder = Path(os.environ.get("MIDAS_PROFILE_DIR", "."))
    profile.dump_stats(folder / f"profile-{count}.prof")
    heap = {"gc_counts": list(gc.get_count()), "gc_stats": gc.get_stats(),
            "frozen": gc.get_freeze_count(), "types": census()}
    (folder / f"heap-{count}.json").write_text(json.dumps(heap))


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    sys.argv[0] = "midas"
    main()
