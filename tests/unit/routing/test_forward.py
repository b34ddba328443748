"""The forward mailbox: wrappers unwrapped, each inner message tracked for the user or queue it was for."""

from __future__ import annotations

from email.message import EmailMessage
from email import message_from_bytes, policy

from sqlalchemy import select

from abook.mailbox.errors import Unavailable
from abook.routing import forward
from abook.mailbox.headers import Head, head_of, read_head
from abook.tracking.parse import Unreadable, read
from abook.store.models import Email, EmailSighting, UntrackedMessage
from tests.unit.routing.conftest import message

FWD = {"name": "fwd", "type": "imap", "role": "forward", "interval": 60.0}


def wrapper(sender: str, *inner: bytes, to: str = "crm-forward@example.com", base64: bool = False,
            **headers: str) -> bytes:
    """A forwarded copy: 7bit message/rfc822 parts as RFC 2046 says, or base64 as some clients send."""
    w = EmailMessage(policy=policy.SMTP)
    w["From"] = sender
    w["To"] = to
    for k, v in headers.items():
        w[k.replace("_", "-")] = v
    w["Subject"] = "FW: copy"
    w["Message-ID"] = f"<wrap.{abs(hash(inner))}@fwd.test>"
    w.set_content("forwarded for tracking")
    for raw in inner:
        if base64:
            w.add_attachment(raw, maintype="message", subtype="rfc822")
        else:
            w.add_attachment(message_from_bytes(raw, policy=policy.SMTP))
    return w.as_bytes()


def _accepting(store) -> list[tuple[str, str | None, str]]:
    with store.transaction() as s:
        rows = s.execute(select(Email.message_id, Email.accepting_id, EmailSighting.arrival)
                         .join(EmailSighting, EmailSighting.email_id == Email.activity_id)
                         .order_by(Email.message_id))
        return [tuple(r) for r in rows]


def test_unwrap_and_candidates() -> None:
    for encoded in (False, True):
        raw = wrapper("Bob <bob@example.com>", message(1), message(2), X_Original_To="support@example.com",
                      base64=encoded)
        inner = forward.unwrap(read(raw))
        assert [read(i)["Message-ID"] for i in inner] == ["<m1.carl@customer.test@test>",
                                                          "<m2.carl@customer.test@test>"]
        assert read(inner[0]).get_payload().strip() == "body 1"
    assert forward.candidate_addresses(read(raw)) == ("bob@example.com", "support@example.com",
                                                      "crm-forward@example.com")


def test_wrapper_is_tracked_for_its_sender_then_removed(store, org, make_router) -> None:
    router = make_router([FWD], start=False)
    src = router.sources["fwd"]
    src.deliver(wrapper("Bob <bob@example.com>", message(1, to="bob@example.com"), message(2, to="bob@example.com")))
    router.service.startService()
    assert _accepting(store) == [("m1.carl@customer.test@test", org.bob, "forward"),
                                 ("m2.carl@customer.test@test", org.bob, "forward")]
    assert src.removed == {1} and src.messages == {}
    with store.transaction() as s:
        assert s.scalars(select(EmailSighting.marked)).all() == [True, True]
    router.stop()


def test_owner_from_the_recipients_when_the_sender_is_external(store, org, make_router) -> None:
    router = make_router([FWD], start=False)
    router.sources["fwd"].deliver(wrapper("carl@customer.test", message(3), to="crm-forward@example.com",
                                          Delivered_To="support@example.com", base64=True))
    router.service.startService()
    assert _accepting(store) == [("m3.carl@customer.test@test", org.support, "forward")]
    router.stop()


def test_wrapper_without_owner_stays_with_its_reason(store, org, make_router) -> None:
    router = make_router([FWD], start=False)
    src = router.sources["fwd"]
    src.deliver(wrapper("stranger@elsewhere.test", message(4)))
    src.deliver(wrapper("bob@example.com"))  # no attachment
    router.service.startService()
    assert _accepting(store) == []
    assert src.removed == set() and sorted(src.messages) == [1, 2]
    with store.transaction() as s:
        rows = s.execute(select(UntrackedMessage.external_id, UntrackedMessage.reason, UntrackedMessage.sender)
                         .order_by(UntrackedMessage.id)).all()
    assert [tuple(r) for r in rows] == [("1", "no_owner", "stranger@elsewhere.test"),
                                        ("2", "parse_error", "bob@example.com")]
    router.stop()


def test_wrappers_are_marked_instead_when_configured(store, org, make_router) -> None:
    router = make_router([FWD], router={"forward_remove_wrappers": False}, start=False)
    router.sources["fwd"].deliver(wrapper("bob@example.com", message(5)))
    router.service.startService()
    assert router.sources["fwd"].tracked == {1} and router.sources["fwd"].removed == set()
    router.stop()


def test_crash_before_removal_is_finished_at_the_next_start(store, org, make_router) -> None:
    router = make_router([FWD], start=False)
    src = router.sources["fwd"]
    src.deliver(wrapper("bob@example.com", message(6), message(7)))
    src.fail("remove", Unavailable("connection reset"))
    router.service.startService()
    assert src.removed == set() and len(_accepting(store)) == 2
    router.stop()
    again = make_router([FWD], sources=router.sources)
    assert src.removed == {1}
    assert len(_accepting(store)) == 2
    with store.transaction() as s:
        assert s.scalars(select(EmailSighting.marked)).all() == [True, True]
    again.stop()


def test_header_fields_read_without_the_body_are_the_full_parse_s() -> None:
    """read_head (loop damping's sender, the untracked list's fields for a message too large to read whole
    before tracking) reads exactly what the full parse reads, over the tracking corpus and every line-break
    oddity around the empty line."""
    from tests.unit.tracking.conftest import MAIL

    samples = [p.read_bytes() for p in sorted(MAIL.glob("*.eml"))]
    head = b"From: Carl <carl@customer.test>\r\nSubject: a\r\n  folded\r\n"
    for eol in (b"\r\n", b"\n", b"\r"):
        for blank in (b"\r\n", b"\n", b"\r"):
            samples.append(head.replace(b"\r\n", eol) + blank + b"Body: not a header\r\n\r\nmore\r\n")
    samples += [b"", b"\r\nFrom: body@x\r\n", b"\nFrom: body@x\n", b"From: only@x", b"From: a@x\r\nnot a header\r\n"
                b"To: b@x\r\n\r\n", b"From: a@x\r\n\tcontinued\r\n\r\n\r\nTo: b@x\r\n", wrapper("bob@example.com",
                message(1))]
    assert len(samples) > 40
    for raw in samples:
        try:
            whole = head_of(read(raw))
        except Unreadable:
            whole = Head(None, None, None)
        assert read_head(raw) == whole, raw[:200]
