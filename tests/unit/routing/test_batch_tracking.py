"""The router tracks a mailbox batch with one ``track_many_txn``: one address resolution and one loop-damping
read per batch, with each message's outcome (and a failing message's isolation) as one by one."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from sqlalchemy import event, select

from abook.store import Store
from abook.store.models import Email, EmailSighting, MailboxState, UntrackedMessage
from abook.tracking import engine
from tests.unit.routing.conftest import message
from tests.unit.routing.test_forward import FWD, wrapper

JANE = {"name": "jane", "type": "imap", "owner": "jane.doe", "interval": 60.0}


@pytest.fixture
def statements(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store runs while the test does."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(store.engine, "before_cursor_execute", record)


def _resolutions(statements: list[str]) -> list[str]:
    return [s for s in statements if "FROM contact" in s and "UNION ALL" in s]


def test_a_batch_resolves_its_addresses_with_one_query(store, org, make_router, statements) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    for n in range(8):
        src.deliver(message(n, to=f"jane@example.com, someone{n}@elsewhere.test"))
    statements.clear()
    router.service.startService()
    assert src.tracked == set(range(1, 9))
    assert len(_resolutions(statements)) == 1  # was one per message
    arrivals = [s for s in statements if "mailarrival" in s.lower()]
    # the window's counts read once, the arrivals written once, the window pruned once
    assert len([s for s in arrivals if s.lstrip().upper().startswith("SELECT")]) == 1
    assert len([s for s in arrivals if s.lstrip().upper().startswith("INSERT")]) == 1
    with store.transaction() as s:
        assert s.scalars(select(EmailSighting.marked)).all() == [True] * 8
    router.stop()


def test_forward_wrappers_of_a_batch_resolve_with_one_query(store, org, make_router, statements) -> None:
    router = make_router([FWD], start=False)
    src = router.sources["fwd"]
    for n in range(3):
        src.deliver(wrapper("bob@example.com", message(10 * n + 1, to="bob@example.com"),
                            message(10 * n + 2, to="bob@example.com")))
    statements.clear()
    router.service.startService()
    assert src.removed == {1, 2, 3}
    assert len(_resolutions(statements)) == 1
    with store.transaction() as s:
        assert len(s.scalars(select(Email.activity_id)).all()) == 6
    router.stop()


def _fail_on(monkeypatch: pytest.MonkeyPatch, marker: bytes) -> None:
    """A bug in the engine that only one message reaches (a fault injected into the real engine)."""
    guarded = engine._guarded

    def failing(session: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if marker in request.raw:
            raise RuntimeError("engine bug")
        return guarded(session, request, *args, **kwargs)

    monkeypatch.setattr(engine, "_guarded", failing)


def test_a_message_that_makes_the_engine_raise_is_isolated(store, org, make_router, monkeypatch) -> None:
    _fail_on(monkeypatch, b"boom")
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.deliver(message(2, subject="boom"))
    src.deliver(message(3))
    router.service.startService()
    assert src.tracked == {1, 3}
    with store.transaction() as s:
        rows = s.execute(select(UntrackedMessage.external_id, UntrackedMessage.reason, UntrackedMessage.detail)
                         .where(UntrackedMessage.mailbox == "jane")).all()
        assert [tuple(r) for r in rows] == [("2", "parse_error", "RuntimeError: engine bug")]
        assert len(s.scalars(select(Email.activity_id)).all()) == 2
        # the cursor covers the failed message too: it is not read again
        state = s.get(MailboxState, "jane")
        assert state is not None and (state.cursor, state.messages_tracked) == ("3", 2)
    router.stop()


def test_a_wrapper_whose_inner_message_makes_the_engine_raise_stays(store, org, make_router, monkeypatch) -> None:
    _fail_on(monkeypatch, b"boom")
    router = make_router([FWD], start=False)
    src = router.sources["fwd"]
    src.deliver(wrapper("bob@example.com", message(1, to="bob@example.com")))
    src.deliver(wrapper("bob@example.com", message(2, to="bob@example.com"),
                        message(3, to="bob@example.com", subject="boom")))
    src.deliver(wrapper("bob@example.com", message(4, to="bob@example.com")))
    router.service.startService()
    assert src.removed == {1, 3} and sorted(src.messages) == [2]
    with store.transaction() as s:
        assert sorted(s.scalars(select(Email.message_id))) == ["m1.carl@customer.test@test",
                                                               "m4.carl@customer.test@test"]
        rows = s.execute(select(UntrackedMessage.external_id, UntrackedMessage.reason)).all()
        assert [tuple(r) for r in rows] == [("2", "parse_error")]
    router.stop()


def test_loop_damping_counts_across_batches_and_holds_a_wrapper(store, org, make_router) -> None:
    router = make_router([{**JANE, "batch_size": 2}], router={"loop_max_messages": 3, "loop_window_minutes": 10.0},
                         start=False)
    src = router.sources["jane"]
    for n in range(5):
        src.deliver(message(n, sender="autoreply@loop.test"))
    router.service.startService()
    assert src.tracked == {1, 2, 3}
    with store.transaction() as s:
        held = s.scalars(select(UntrackedMessage.external_id).where(UntrackedMessage.reason == "loop")
                         .order_by(UntrackedMessage.id)).all()
    assert held == ["4", "5"]
    router.stop()

    fwd = make_router([FWD], router={"loop_max_messages": 1, "loop_window_minutes": 10.0}, start=False)
    src = fwd.sources["fwd"]
    src.deliver(wrapper("bob@example.com", message(20, sender="flood@loop.test", to="bob@example.com"),
                        message(21, sender="flood@loop.test", to="bob@example.com")))
    src.deliver(wrapper("bob@example.com", message(22, to="bob@example.com")))
    fwd.service.startService()
    # the first wrapper's second copy is held: that wrapper stays, its first copy tracked; the other goes
    assert src.removed == {2} and sorted(src.messages) == [1]
    with store.transaction() as s:
        assert sorted(s.scalars(select(Email.message_id))) == [
            "m0.autoreply@loop.test@test", "m1.autoreply@loop.test@test", "m2.autoreply@loop.test@test",
            "m20.flood@loop.test@test", "m22.carl@customer.test@test"]
        held = s.scalars(select(UntrackedMessage.external_id).where(UntrackedMessage.mailbox == "fwd")).all()
    assert held == ["1#2"]
    fwd.stop()
