from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from whatsgate.domain.errors import InvalidInput
from whatsgate.domain.pacing import HumanTyping, PacingPolicy, SendPacer, Slot

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def drive(pacer: SendPacer, count: int, start: datetime = T0, sid: str = "s1") -> list[Slot]:
    """A session with a long queue: each send goes at the first moment pacing allows."""
    now = start
    slots = []
    for _ in range(count):
        slot = pacer.slot(sid, now)
        slots.append(slot)
        pacer.record(sid, slot.at)
        now = slot.at
    return slots


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def test_within_the_budget_sends_go_with_a_small_random_gap() -> None:
    pacer = SendPacer(PacingPolicy(), random.Random(1))
    slots = drive(pacer, 30)
    assert not any(s.throttled for s in slots)
    gaps = [seconds(a.at, b.at) for a, b in pairwise(slots)]
    assert all(0.5 <= g <= 1.5 for g in gaps)
    assert len(set(gaps)) > 1  # random, not a fixed beat
    assert seconds(slots[0].at, slots[-1].at) < 60


def test_the_31st_in_a_minute_is_held_until_the_window_has_room() -> None:
    pacer = SendPacer(PacingPolicy(), random.Random(2))
    slots = drive(pacer, 31)
    assert slots[30].throttled
    assert slots[30].at >= slots[0].at + timedelta(seconds=60)


def test_beyond_the_budget_gaps_grow_and_no_window_holds_more_than_30() -> None:
    policy = PacingPolicy()
    pacer = SendPacer(policy, random.Random(3))
    slots = drive(pacer, 60)
    times = [s.at for s in slots]
    assert all(s.throttled for s in slots[30:])
    held_gaps = [seconds(a, b) for a, b in pairwise(times[30:])]
    # Each held-back send waits longer than the one before, then steadies at the cap.
    growing = held_gaps[:12]
    assert all(a < b for a, b in pairwise(growing))
    spread = policy.held_step * policy.jitter
    assert all(abs(g - policy.held_cap) <= spread for g in held_gaps[16:])
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + timedelta(seconds=60)]
        assert len(in_window) <= 30


def test_a_quiet_minute_brings_the_normal_pace_back() -> None:
    pacer = SendPacer(PacingPolicy(), random.Random(4))
    slots = drive(pacer, 35)
    later = slots[-1].at + timedelta(seconds=61)
    assert pacer.slot("s1", later) == Slot(later, throttled=False)
    again = drive(pacer, 5, start=later)
    assert not any(s.throttled for s in again)


def test_sessions_are_paced_apart() -> None:
    pacer = SendPacer(PacingPolicy(), random.Random(5))
    drive(pacer, 30, sid="busy")
    assert pacer.slot("busy", T0 + timedelta(seconds=40)).throttled
    assert pacer.slot("quiet", T0 + timedelta(seconds=40)) == Slot(
        T0 + timedelta(seconds=40), throttled=False
    )


def test_would_hold_counts_recent_sends_and_the_queue_ahead() -> None:
    pacer = SendPacer(PacingPolicy(), random.Random(6))
    assert not pacer.would_hold("s1", T0, ahead=29)
    assert pacer.would_hold("s1", T0, ahead=30)
    drive(pacer, 10)
    now = T0 + timedelta(seconds=20)
    assert not pacer.would_hold("s1", now, ahead=19)
    assert pacer.would_hold("s1", now, ahead=20)


def test_a_queue_counted_up_to_ahead_needed_gives_the_same_answer_as_the_full_count() -> None:
    pacer = SendPacer(PacingPolicy(), random.Random(6))
    assert pacer.ahead_needed("s1", T0) == 30
    drive(pacer, 10)
    now = T0 + timedelta(seconds=20)
    needed = pacer.ahead_needed("s1", now)
    assert needed == 20
    for ahead in (0, 19, 20, 21, 500):
        capped = min(ahead, needed)
        assert pacer.would_hold("s1", now, ahead=capped) == pacer.would_hold("s1", now, ahead=ahead)
    drive(pacer, 25, start=now)  # past the budget: held back whatever is queued
    later = T0 + timedelta(seconds=40)
    assert pacer.ahead_needed("s1", later) == 0
    assert pacer.would_hold("s1", later, ahead=0)


def test_typing_time_grows_with_the_text_within_bounds() -> None:
    typing = HumanTyping(enabled=True, per_char=0.05, minimum=1.0, maximum=8.0)
    rng = random.Random(7)
    assert typing.duration(None, rng) == 1.0
    short, longer = typing.duration("x" * 40, rng), typing.duration("x" * 120, rng)
    assert 1.0 < short < longer < 8.0
    assert typing.duration("x" * 10_000, rng) == 8.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_window": 0},
        {"window": 0},
        {"gap_min": 2.0, "gap_max": 1.0},
        {"held_step": 0},
        {"held_step": 40.0, "held_cap": 30.0},
        {"jitter": 0.5},
    ],
)
def test_nonsense_pacing_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        PacingPolicy(**kwargs)  # type: ignore[arg-type]
