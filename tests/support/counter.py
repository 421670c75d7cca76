"""A small aggregate for the repository's contract tests: opened with a label, then
incremented."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event


class Counter(Aggregate):
    @event("Opened")
    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0

    @event("Incremented")
    def increment(self, by: int) -> None:
        self.count += by
