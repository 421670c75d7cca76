"""When a dead worker is restarted, and when crashes become a crash loop."""

from __future__ import annotations

from midas.supervisor import CrashPolicy


def policy(limit: int = 3, window_s: float = 60.0) -> CrashPolicy:
    return CrashPolicy(limit=limit, window_s=window_s, backoff_s=0.5, max_backoff_s=4.0)


def test_the_back_off_doubles_with_each_recent_crash_up_to_its_cap() -> None:
    crashes = policy(limit=10)
    assert [crashes.crashed(float(t)) for t in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_the_limit_th_crash_within_the_window_is_a_crash_loop() -> None:
    crashes = policy(limit=3)
    assert crashes.crashed(0.0) == 0.5
    assert crashes.crashed(30.0) == 1.0  # limit - 1 crashes: still restarted
    assert crashes.crashed(59.0) is None


def test_a_crash_exactly_window_s_later_still_counts_and_one_just_after_does_not() -> None:
    counted = policy(limit=2)
    counted.crashed(0.0)
    assert counted.crashed(60.0) is None
    forgotten = policy(limit=2)
    forgotten.crashed(0.0)
    assert forgotten.crashed(60.001) == 0.5  # the first fell out of the window


def test_crashes_spread_wider_than_the_window_never_give_up() -> None:
    crashes = policy(limit=2)
    assert all(crashes.crashed(61.0 * n) == 0.5 for n in range(20))


def test_a_limit_of_one_gives_up_at_the_first_crash() -> None:
    assert policy(limit=1).crashed(0.0) is None
