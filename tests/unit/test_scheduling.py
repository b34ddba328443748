"""FairQueue: slots, per-owner caps, round-robin between owners, bounds and cancellation, with a runner
whose calls finish when the test says so."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from abook.scheduling import FairQueue, QueueFull
from tests.helpers import failure_result_of, success_result_of


class ManualRunner:
    """Runs nothing by itself: each call waits until the test finishes it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, defer.Deferred]] = []

    def run(self, f: Any, *args: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.calls.append((args[0] if args else f, d))
        return d

    def started(self) -> list[Any]:
        return [name for name, _ in self.calls]

    def finish(self, name: Any, result: Any = None) -> None:
        for i, (n, d) in enumerate(self.calls):
            if n == name and not d.called:
                d.callback(result if result is not None else name)
                return
        raise AssertionError(f"{name} is not running")


def _work(name: str) -> str:
    return name


def test_calls_within_the_caps_start_at_once_and_the_rest_wait():
    runner = ManualRunner()
    q = FairQueue(runner, 3, (2, 1))
    ds = [q.run(("alice", "c1"), _work, "a1"), q.run(("alice", "c1"), _work, "a2"),
          q.run(("alice", "c2"), _work, "a3"), q.run(("alice", "c3"), _work, "a4")]
    # c1 may run one at a time, alice two at a time
    assert runner.started() == ["a1", "a3"]
    assert (q.running, q.waiting) == (2, 2)
    runner.finish("a1")
    assert runner.started()[-1] == "a2"  # alice's oldest call that her caps allow
    runner.finish("a2")
    runner.finish("a3")
    assert runner.started()[-1] == "a4"
    runner.finish("a4")
    assert [success_result_of(d) for d in ds] == ["a1", "a2", "a3", "a4"]
    assert (q.running, q.waiting, q.held("alice")) == (0, 0, 0)


def test_waiting_owners_are_served_in_turn():
    runner = ManualRunner()
    q = FairQueue(runner, 1, (1,))
    q.run(("heavy",), _work, "h0")
    for i in range(1, 6):
        q.run(("heavy",), _work, f"h{i}")
    q.run(("light",), _work, "l1")
    q.run(("light",), _work, "l2")
    order = []
    while runner.calls and not all(d.called for _, d in runner.calls):
        current = [n for n, d in runner.calls if not d.called][0]
        order.append(current)
        runner.finish(current)
    # the light owner's calls do not wait behind the heavy owner's queue, only one heavy call each
    assert order[:5] == ["h0", "h1", "l1", "h2", "l2"]
    assert sorted(order) == sorted(["h0", "h1", "h2", "h3", "h4", "h5", "l1", "l2"])


def test_queue_bounds_refuse_at_once():
    runner = ManualRunner()
    q = FairQueue(runner, 1, (1,), max_waiting=3, max_waiting_per_owner=2)
    q.run(("a",), _work, "a0")
    q.run(("a",), _work, "a1")
    q.run(("a",), _work, "a2")
    failure_result_of(q.run(("a",), _work, "a3"), QueueFull)  # a's own bound
    q.run(("b",), _work, "b1")
    failure_result_of(q.run(("c",), _work, "c1"), QueueFull)  # the bound in all
    assert q.waiting == 3


def test_cancelling_a_waiting_call_takes_it_out_and_a_running_one_keeps_its_slot():
    runner = ManualRunner()
    q = FairQueue(runner, 1)
    running = q.run(("a",), _work, "first")
    waiting = q.run(("b",), _work, "second")
    waiting.cancel()
    failure_result_of(waiting, defer.CancelledError)
    assert q.waiting == 0
    running.cancel()
    failure_result_of(running, defer.CancelledError)
    third = q.run(("c",), _work, "third")
    assert runner.started() == ["first"] and q.running == 1  # the thread still runs "first"
    runner.finish("first")  # its late result is dropped, and the slot goes to the next call
    assert runner.started() == ["first", "third"]
    runner.finish("third")
    assert success_result_of(third) == "third"


def test_a_failing_call_frees_its_slot_and_fails_its_caller():
    runner = ManualRunner()
    q = FairQueue(runner, 1)
    d = q.run(("a",), _work, "bad")
    nxt = q.run(("a",), _work, "next")
    runner.calls[0][1].errback(ValueError("boom"))
    with pytest.raises(ValueError):
        success_result_of(d)
    assert runner.started() == ["bad", "next"]
    runner.finish("next")
    assert success_result_of(nxt) == "next"


def test_contention_sees_other_calls_start_run_or_wait():
    runner = ManualRunner()
    q = FairQueue(runner, 2, (1,))
    q.run(("heavy",), _work, "h")
    contended = q.contention()
    assert contended() is False  # only the heavy call itself runs
    q.run(("light",), _work, "l1")
    assert contended() is True  # another call started (and runs) since the last look
    runner.finish("l1")
    assert contended() is False
    q.run(("heavy",), _work, "h2")  # waits behind the heavy owner's cap
    assert contended() is True
