"""SPEC section 3, rule by rule, on SQLite and PostgreSQL: duplicates, acceptance, parties, correlation, storage."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from abook.config.model import TrackingConfig
from abook.store import Store
from abook.store.models import Activity, Attachment, Contact, Email, EmailSighting, Queue, SystemUser
from abook.tracking.api import REASONS, Owner, TrackRequest
from abook.tracking.engine import mark_sighting_txn, token_for_email_txn, track_txn
from tests.unit.tracking.conftest import (
    MAIL,
    Crm,
    count,
    message,
    parties_of,
    set_option,
    track,
    untracked_reasons,
    user,
)

PLAIN = (MAIL / "plain.eml").read_bytes()


def _email(store: Store, activity_id: str) -> tuple[Activity, Email]:
    with store.transaction() as s:
        activity = s.get(Activity, activity_id)
        assert activity is not None and activity.email is not None
        return activity, activity.email


# ---------------------------------------------------------------------------------------------------------
# 1. Duplicates


def test_second_mailbox_adds_a_sighting_to_the_same_activity(store: Store, crm: Crm) -> None:
    first = track(store, PLAIN, user(crm.jane), mailbox="jane-inbox", external_id="17")
    second = track(store, PLAIN, Owner("queue", crm.support), mailbox="support-inbox", external_id="AAMk=")
    assert first.outcome == "tracked"
    assert (second.outcome, second.activity_id) == ("sighting", first.activity_id)
    assert count(store, Email) == 1
    with store.transaction() as s:
        seen = s.execute(select(EmailSighting.mailbox, EmailSighting.external_id, EmailSighting.marked)
                         .order_by(EmailSighting.id)).all()
    assert [tuple(r) for r in seen] == [("jane-inbox", "17", False), ("support-inbox", "AAMk=", False)]


def test_same_mailbox_again_is_recorded_as_duplicate(store: Store, crm: Crm) -> None:
    track(store, PLAIN, user(crm.jane))
    again = track(store, PLAIN, user(crm.jane))
    assert (again.outcome, again.reason) == ("untracked", "duplicate")
    assert untracked_reasons(store) == ["duplicate"]
    assert count(store, Email) == 1


def test_different_messages_sharing_a_message_id_are_never_merged(store: Store, crm: Crm) -> None:
    a = track(store, (MAIL / "duplicate_id_a.eml").read_bytes(), user(crm.jane))
    b = track(store, (MAIL / "duplicate_id_b.eml").read_bytes(), user(crm.jane))
    assert a.outcome == b.outcome == "tracked"
    assert a.activity_id != b.activity_id
    assert _email(store, a.activity_id)[1].message_id == _email(store, b.activity_id)[1].message_id  # type: ignore[arg-type]


def test_message_id_is_normalised_before_comparing(store: Store, crm: Crm) -> None:
    head = ("From: alice@example.com", "Subject: s", "Date: Mon, 02 Nov 2026 10:00:00 +0000")
    first = track(store, message(*head, "Message-ID: <Part.One@Example.COM>"), user(crm.jane), mailbox="a")
    other = track(store, message(*head, "Message-ID:   <Part.One@example.com> "), user(crm.jane), mailbox="b")
    assert (other.outcome, other.activity_id) == ("sighting", first.activity_id)
    assert _email(store, first.activity_id)[1].message_id == "Part.One@example.com"  # type: ignore[arg-type]


def test_messages_without_message_id_are_identified_by_a_stable_header_hash(store: Store, crm: Crm) -> None:
    raw = (MAIL / "no_message_id.eml").read_bytes()
    first = track(store, raw, user(crm.jane), mailbox="a")
    refolded = raw.replace(b"Subject: No id here", b"Subject: No id\r\n here")
    assert track(store, refolded, user(crm.jane), mailbox="b").activity_id == first.activity_id
    different = track(store, raw.replace(b"10:01:00", b"10:02:00"), user(crm.jane), mailbox="a")
    assert different.outcome == "tracked" and different.activity_id != first.activity_id


# ---------------------------------------------------------------------------------------------------------
# 2. Acceptance


def test_option_all_tracks_mail_from_anyone(store: Store, crm: Crm) -> None:
    result = track(store, message("From: stranger@nowhere.example", "Subject: hi"), user(crm.jane))
    assert result.outcome == "tracked"


def test_option_none_disables_automatic_tracking_but_not_manual(store: Store, crm: Crm) -> None:
    set_option(store, SystemUser, crm.jane, "none")
    result = track(store, PLAIN, user(crm.jane))
    assert (result.outcome, result.reason) == ("untracked", "disabled")
    assert count(store, Email) == 0
    assert track(store, PLAIN, user(crm.jane), arrival="manual", mailbox="manual").outcome == "tracked"


def test_responses_accepts_only_replies_to_tracked_mail(store: Store, crm: Crm) -> None:
    set_option(store, SystemUser, crm.jane, "responses")
    assert track(store, PLAIN, user(crm.jane)).reason == "no_correlation"
    track(store, PLAIN, user(crm.jane), arrival="manual")
    reply = track(store, (MAIL / "reply_in_reply_to.eml").read_bytes(), user(crm.jane))
    assert reply.outcome == "tracked"
    assert untracked_reasons(store) == ["no_correlation"]


def test_crm_parties_accepts_customers_and_rejects_internal_and_unknown_senders(store: Store, crm: Crm) -> None:
    set_option(store, SystemUser, crm.jane, "crm_parties")
    assert track(store, message("From: bob@example.net", "Subject: a"), user(crm.jane)).outcome == "tracked"
    assert track(store, message("From: sales@customer.example", "Subject: b"), user(crm.jane)).outcome == "tracked"
    internal = track(store, message("From: Ada <ADMIN@corp.example>", "To: bob@example.net", "Subject: c"),
                     user(crm.jane))
    queue = track(store, message("From: support@corp.example", "Subject: d"), user(crm.jane))
    unknown = track(store, message("From: stranger@nowhere.example", "To: bob@example.net", "Subject: e"),
                    user(crm.jane))
    assert (internal.reason, queue.reason, unknown.reason) == ("internal", "internal", "no_sender_match")
    manual = track(store, message("From: stranger@nowhere.example", "Subject: e"), user(crm.jane), arrival="manual")
    assert manual.outcome == "tracked"
    assert untracked_reasons(store) == ["internal", "internal", "no_sender_match"]


def test_crm_parties_on_outgoing_mail_looks_at_the_recipients(store: Store, crm: Crm) -> None:
    set_option(store, SystemUser, crm.jane, "crm_parties")
    to_customer = message("From: jane@corp.example", "To: bob@example.net", "Subject: offer")
    to_colleague = message("From: jane@corp.example", "To: admin@corp.example", "Subject: lunch")
    assert track(store, to_customer, user(crm.jane), direction="out").outcome == "tracked"
    assert track(store, to_colleague, user(crm.jane), direction="out").reason == "internal"


def test_a_queue_mailbox_follows_the_queue_option(store: Store, crm: Crm) -> None:
    set_option(store, Queue, crm.support, "crm_parties")
    result = track(store, message("From: stranger@nowhere.example", "Subject: x"), Owner("queue", crm.support))
    assert result.reason == "no_sender_match"


def test_unknown_owner_and_unreadable_input_are_recorded(store: Store, crm: Crm) -> None:
    assert track(store, PLAIN, user("00000000-0000-0000-0000-000000000000")).reason == "no_owner"
    garbage = track(store, (MAIL / "binary_garbage.eml").read_bytes(), user(crm.jane), external_id="uidl-9")
    empty = track(store, b"", user(crm.jane))
    assert garbage.reason == empty.reason == "parse_error"
    big = track(store, PLAIN + b"x" * 2048, user(crm.jane), config=TrackingConfig(max_message_bytes=1024))
    assert big.reason == "too_large"
    assert untracked_reasons(store) == ["no_owner", "parse_error", "parse_error", "too_large"]
    assert set(untracked_reasons(store)) <= set(REASONS)


# ---------------------------------------------------------------------------------------------------------
# 3. Parties


def test_one_address_shared_by_a_lead_a_contact_and_a_user_links_all_three(store: Store, crm: Crm) -> None:
    result = track(store, message("From: Alice Example <alice@example.com>", "To: jane@corp.example",
                                  "Subject: seed example"), user(crm.jane))
    senders = [p for p in parties_of(store, result.activity_id) if p[0] == 1]  # type: ignore[arg-type]
    assert sorted((p[1], p[2]) for p in senders) == sorted(
        [("contact", crm.contact), ("lead", crm.lead), ("systemuser", crm.shared_user)])
    assert {(p[3], p[4]) for p in senders} == {("alice@example.com", "Alice Example")}


def test_to_cc_and_unresolved_parties_keep_their_address_and_display_name(store: Store, crm: Crm) -> None:
    raw = message("From: Bob <bob@example.net>", "To: Jane <JANE@corp.example>, Who? <who@nowhere.example>",
                  "Cc: Customer <sales@customer.example>", "Bcc: admin@corp.example", "Subject: parties")
    result = track(store, raw, user(crm.jane))
    assert parties_of(store, result.activity_id) == [  # type: ignore[arg-type]
        (1, "contact", crm.bob, "bob@example.net", "Bob"),
        (2, None, None, "who@nowhere.example", "Who?"),
        (2, "systemuser", crm.jane, "JANE@corp.example", "Jane"),
        (3, "account", crm.account, "sales@customer.example", "Customer"),
    ]  # Bcc of incoming mail is not a party


def test_bcc_is_a_party_of_outgoing_mail(store: Store, crm: Crm) -> None:
    raw = message("From: jane@corp.example", "To: bob@example.net", "Bcc: Ada <admin@corp.example>", "Subject: o")
    result = track(store, raw, user(crm.jane), direction="out")
    assert (4, "systemuser", crm.admin, "admin@corp.example", "Ada") in parties_of(store, result.activity_id)  # type: ignore[arg-type]


def test_idn_quoted_local_parts_and_case_are_matched(store: Store, crm: Crm) -> None:
    with store.transaction() as s:
        common = {"owner_id": crm.jane, "owningbusinessunit_id": crm.bu}
        c1 = Contact(fullname="Jörg", emailaddress1="jörg@bücher.example", **common)
        c2 = Contact(fullname="Müller", emailaddress1="info@xn--mller-kva.example", **common)
        c3 = Contact(fullname="John", emailaddress1="John.Doe@example.com", **common)
        s.add_all([c1, c2, c3])
        s.flush()
        ids = {c1.id, c2.id, c3.id}
    for name in ("idn_addresses.eml", "quoted_local_part.eml"):
        result = track(store, (MAIL / name).read_bytes(), user(crm.jane))
        assert result.outcome == "tracked"
        ids -= {p[2] for p in parties_of(store, result.activity_id)}  # type: ignore[arg-type]
    assert ids == set()
    # and the other way round: the message spells the domain in punycode, the store in Unicode
    result = track(store, message("From: j@x", "To: J\u00f6rg <j\u00f6rg@xn--bcher-kva.example>", "Subject: p"),
                   user(crm.jane))
    assert c1.id in {p[2] for p in parties_of(store, result.activity_id)}  # type: ignore[arg-type]


def test_inactive_records_are_not_linked(store: Store, crm: Crm) -> None:
    with store.transaction() as s:
        s.get(Contact, crm.bob).statecode = 1  # type: ignore[union-attr]
    result = track(store, message("From: bob@example.net", "Subject: gone"), user(crm.jane))
    assert parties_of(store, result.activity_id) == [(1, None, None, "bob@example.net", None)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# 4. Correlation and regarding


def _with_regarding(store: Store, activity_id: str, entity: str, record_id: str) -> None:
    with store.transaction() as s:
        activity = s.get(Activity, activity_id)
        activity.regarding_type, activity.regarding_id = entity, record_id  # type: ignore[union-attr]


def test_in_reply_to_correlates_and_copies_the_regarding_record(store: Store, crm: Crm) -> None:
    first = track(store, PLAIN, user(crm.jane))
    _with_regarding(store, first.activity_id, "account", crm.account)  # type: ignore[arg-type]
    reply = track(store, (MAIL / "reply_in_reply_to.eml").read_bytes(), user(crm.jane))
    activity, email = _email(store, reply.activity_id)  # type: ignore[arg-type]
    assert (activity.regarding_type, activity.regarding_id) == ("account", crm.account)
    assert email.correlation_method == "in_reply_to"


def test_references_correlate_when_in_reply_to_names_nothing_tracked(store: Store, crm: Crm) -> None:
    first = track(store, PLAIN, user(crm.jane))
    _with_regarding(store, first.activity_id, "contact", crm.bob)  # type: ignore[arg-type]
    raw = message("From: alice@example.com", "Subject: Re: Re: Plain", "In-Reply-To: <not-tracked@x>",
                  "References: <plain-1@example.com> <not-tracked@x>", "Message-ID: <r2@x>")
    activity, email = _email(store, track(store, raw, user(crm.jane)).activity_id)  # type: ignore[arg-type]
    assert (email.correlation_method, activity.regarding_id) == ("references", crm.bob)


def _crm_email_with_token(store: Store, crm: Crm, config: TrackingConfig) -> tuple[str, str]:
    with store.transaction() as s:
        activity = Activity(activitytypecode="email", owner_id=crm.jane, subject="Offer", statuscode=3,
                            regarding_type="lead", regarding_id=crm.lead)
        s.add(activity)
        s.flush()
        s.add(Email(activity_id=activity.id, message_id="sent-by-crm@corp.example", directioncode=True))
        s.flush()
        return activity.id, token_for_email_txn(s, activity.id, config)


def test_tracking_token_in_the_subject_correlates_after_any_prefixes(store: Store, crm: Crm,
                                                                     config: TrackingConfig) -> None:
    _, token = _crm_email_with_token(store, crm, config)
    raw = message("From: alice@example.com", f"Subject: RE: FW: AW: SV: Re: Offer {token} (revised)")
    activity, email = _email(store, track(store, raw, user(crm.jane)).activity_id)  # type: ignore[arg-type]
    assert (email.correlation_method, activity.regarding_type, activity.regarding_id) == ("token", "lead", crm.lead)
    assert email.tracking_token is None  # the reply gets its own token only when the CRM sends it


def test_in_reply_to_wins_over_the_token(store: Store, crm: Crm, config: TrackingConfig) -> None:
    _, token = _crm_email_with_token(store, crm, config)
    first = track(store, PLAIN, user(crm.jane))
    _with_regarding(store, first.activity_id, "account", crm.account)  # type: ignore[arg-type]
    raw = message("From: alice@example.com", f"Subject: Re: {token}", "In-Reply-To: <plain-1@example.com>")
    activity, email = _email(store, track(store, raw, user(crm.jane)).activity_id)  # type: ignore[arg-type]
    assert (email.correlation_method, activity.regarding_id) == ("in_reply_to", crm.account)


def test_uncorrelated_mail_has_no_regarding_record(store: Store, crm: Crm) -> None:
    activity, email = _email(store, track(store, PLAIN, user(crm.jane)).activity_id)  # type: ignore[arg-type]
    assert (email.correlation_method, activity.regarding_type, activity.regarding_id) == (None, None, None)


# ---------------------------------------------------------------------------------------------------------
# 5. Storage


def test_incoming_mail_is_stored_whole_as_received(store: Store, crm: Crm) -> None:
    raw = (MAIL / "nested_rfc822.eml").read_bytes()
    result = track(store, raw, user(crm.jane))
    activity, email = _email(store, result.activity_id)  # type: ignore[arg-type]
    assert (activity.statecode, activity.statuscode, email.statuscode_cache) == (1, 4, 4)
    assert (activity.owner_id, email.accepting_type, email.accepting_id) == (crm.jane, "systemuser", crm.jane)
    assert email.raw == raw and email.directioncode is False
    assert email.body_text == "see below" and activity.subject == "Fwd: the original"
    with store.transaction() as s:
        (att,) = s.scalars(select(Attachment).where(Attachment.email_id == result.activity_id)).all()
        assert (att.mimetype, att.filename) == ("message/rfc822", "message.eml")
        assert b"Subject: the original" in att.body and b"data.csv" in att.body


def test_outgoing_mail_is_stored_as_sent_with_html_and_attachments(store: Store, crm: Crm) -> None:
    raw = (MAIL / "tnef_winmail.eml").read_bytes()
    activity, email = _email(store, track(store, raw, user(crm.jane), direction="out").activity_id)  # type: ignore[arg-type]
    assert (activity.statuscode, email.directioncode, email.sent_at is not None) == (3, True, True)
    with store.transaction() as s:
        (att,) = s.scalars(select(Attachment).where(Attachment.email_id == activity.id)).all()
        assert (att.filename, att.mimetype, att.filesize) == ("winmail.dat", "application/ms-tnef", 1028)
    html = track(store, (MAIL / "alternative_inline_image.eml").read_bytes(), user(crm.jane))
    _, email = _email(store, html.activity_id)  # type: ignore[arg-type]
    assert (email.body_text, email.body_html) == ("plain", '<img src="cid:logo@x">')


def test_queue_mail_is_owned_by_an_administrator_or_the_configured_user(store: Store, crm: Crm) -> None:
    result = track(store, PLAIN, Owner("queue", crm.support), mailbox="support")
    activity, email = _email(store, result.activity_id)  # type: ignore[arg-type]
    assert (activity.owner_id, email.accepting_type, email.accepting_id) == (crm.admin, "queue", crm.support)
    other = track(store, (MAIL / "html_only.eml").read_bytes(), Owner("queue", crm.support),
                  config=TrackingConfig(queue_owner="Jane"))
    assert _email(store, other.activity_id)[0].owner_id == crm.jane  # type: ignore[arg-type]


def test_track_txn_never_commits_the_callers_transaction(store: Store, crm: Crm) -> None:
    """The router saves its cursor in the same transaction: rolling it back must undo the message too."""
    request = TrackRequest(raw=(MAIL / "tnef_winmail.eml").read_bytes(), mailbox="m", owner=user(crm.jane),
                           arrival="router")
    with pytest.raises(RuntimeError):
        with store.transaction() as s:
            s.execute(select(SystemUser.id)).all()  # a read first, as a router would
            assert track_txn(s, request, TrackingConfig()).outcome == "tracked"
            assert track_txn(s, TrackRequest(b"", "m", user(crm.jane), "router"), TrackingConfig()).reason
            raise RuntimeError("crash before the cursor is saved")
    assert (count(store, Email), count(store, Attachment), untracked_reasons(store)) == (0, 0, [])


def test_router_marks_a_sighting(store: Store, crm: Crm) -> None:
    result = track(store, PLAIN, user(crm.jane), mailbox="jane-inbox")
    with store.transaction() as s:
        assert mark_sighting_txn(s, result.activity_id, "jane-inbox") is True  # type: ignore[arg-type]
        assert mark_sighting_txn(s, result.activity_id, "elsewhere") is False  # type: ignore[arg-type]
    with store.transaction() as s:
        assert s.scalar(select(EmailSighting.marked)) is True


def test_every_corpus_message_is_tracked_or_recorded_with_a_reason(store: Store, crm: Crm) -> None:
    files = sorted(MAIL.glob("*.eml"))
    assert len(files) >= 25
    outcomes = {}
    for path in files:
        outcomes[path.name] = track(store, path.read_bytes(), user(crm.jane), mailbox="corpus").outcome
    unreadable = {"empty.eml", "binary_garbage.eml"}
    assert {n for n, o in outcomes.items() if o == "untracked"} == unreadable
    assert count(store, Email) == len(files) - len(unreadable)
    assert untracked_reasons(store) == ["parse_error", "parse_error"]


def test_the_same_email_always_gets_the_same_token_and_each_user_counts_their_own(store: Store, crm: Crm) -> None:
    config = TrackingConfig(token_prefix="ACME:", token_base=100, user_digits=3, counter_digits=5)

    def crm_email(owner: str) -> str:
        with store.transaction() as s:
            activity = Activity(activitytypecode="email", owner_id=owner, subject="x")
            s.add(activity)
            s.flush()
            s.add(Email(activity_id=activity.id))
            return activity.id

    first, second, other = crm_email(crm.jane), crm_email(crm.jane), crm_email(crm.admin)
    with store.transaction() as s:
        tokens = [token_for_email_txn(s, first, config), token_for_email_txn(s, second, config),
                  token_for_email_txn(s, other, config)]
    with store.transaction() as s:
        again = token_for_email_txn(s, first, config)
        numbers = {u.domainname: (u.tracking_number, u.token_counter) for u in s.scalars(select(SystemUser))
                   if u.tracking_number is not None}
    assert again == tokens[0]
    jane_number, admin_number = numbers["jane"][0], numbers["admin"][0]
    assert jane_number != admin_number
    assert tokens == [f"ACME:{100 + jane_number}00001", f"ACME:{100 + jane_number}00002",
                      f"ACME:{100 + admin_number}00001"]
    assert numbers["jane"][1] == 2 and numbers["admin"][1] == 1
    with store.transaction() as s, pytest.raises(LookupError):
        token_for_email_txn(s, "no-such-email", config)
