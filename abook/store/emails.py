"""CRM email written from the command line (`abook email compose`) and where each one is (`abook email list`).

``create_email_txn`` creates what the CRM creates when a user sends an email from it: an email activity in
Pending Send (6, state completed), owned by the sending user (for a queue: by the user owning the queue's
mail, as for tracked queue mail), with its sender, to, cc and bcc parties, the record it is regarding, the
body and attachments. ``routing/compose.compose_txn`` then allocates its tracking token in the same
transaction, so the token is known before the mail leaves. The router's outgoing queue
(``routing/outgoing.py``) sends it with the token in the subject, when the sender's outgoing method is
``router`` and ``[smtp]`` is configured; ``create_email_txn`` says so when either is missing, since the
email would otherwise wait without a word.

A recipient or the regarding record is ``ENTITY:NAME`` (a record by id or name; a recipient then uses the
record's primary email) or, for a recipient, an email address, linked to the one active record that has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abook.config.model import AbookConfig
from abook.errors import NotFound, UserError
from abook.store.enums import EmailStatus, ParticipationType, State
from abook.store.models import EMAIL_FIELDS, ENTITY_MODELS, Activity, ActivityParty, Attachment, Email, Queue, SystemUser
from abook.store.owners import owner_info_txn
from abook.store.settings import parse_email
from abook.store.tracking import resolve_addresses_txn

#: the states `abook email list` knows, as an admin names them
STATES: dict[str, EmailStatus] = {"pending": EmailStatus.pending_send, "sending": EmailStatus.sending,
                                  "sent": EmailStatus.sent, "failed": EmailStatus.failed}
#: what ENTITY may be in ENTITY:NAME, and the table it names
RECIPIENT_ENTITIES = {"contact": "contact", "account": "account", "lead": "lead", "user": "systemuser",
                      "queue": "queue"}
REGARDING_ENTITIES = ("account", "contact", "lead")
_NOUN = {"systemuser": "user"}
#: columns a record is looked up by, after its id
_NAME_COLUMNS = {"contact": ("fullname",), "lead": ("fullname",), "account": ("name",), "queue": ("name", "emailaddress"),
                 "systemuser": ("domainname", "fullname", "internalemailaddress")}


@dataclass(frozen=True)
class Draft:
    subject: str
    body: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    #: the sending user (name or email), and/or the sending queue (name or email)
    user: str | None = None
    queue: str | None = None
    regarding: str | None = None
    #: (file name, MIME type, content)
    attachments: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(frozen=True)
class Composed:
    activity_id: str
    token: str
    sender: str
    #: "address" or "address (entity name)" per recipient, in to, cc, bcc order
    recipients: tuple[str, ...]
    #: why the router will not send it (yet), each with what to do
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Listed:
    activity_id: str
    state: str
    when: datetime | None
    owner: str | None
    sender: str | None
    to: tuple[str, ...]
    subject: str | None
    token: str | None
    attempts: int
    last_error: str | None


def find_record_txn(session: Session, entity: str, name: str) -> Any:
    """A record of ``entity`` by id or, case-insensitively, by name; exactly one, else a UserError."""
    model: Any = ENTITY_MODELS[entity]
    record = session.get(model, name.strip())
    if record is not None:
        return record
    key = name.strip().lower()
    for column in _NAME_COLUMNS[entity]:
        found = list(session.scalars(select(model).where(func.lower(getattr(model, column)) == key).limit(2)))
        if len(found) > 1:
            raise UserError(f"several {_NOUN.get(entity, entity)} records are called {name!r}: give its id")
        if found:
            return found[0]
    raise NotFound(f"no {_NOUN.get(entity, entity)} {name!r}")


def regarding_txn(session: Session, spec: str, what: str = "--regarding") -> tuple[str, str]:
    """(entity, id) of the record ``ENTITY:NAME`` names as an email's regarding record, else a UserError."""
    entity, sep, name = spec.partition(":")
    if not sep or entity.strip().lower() not in REGARDING_ENTITIES:
        raise UserError(f"bad {what} {spec!r}: expected ENTITY:NAME with ENTITY one of {', '.join(REGARDING_ENTITIES)}")
    return entity.strip().lower(), find_record_txn(session, entity.strip().lower(), name).id


def record_label_txn(session: Session, entity: str, record_id: str) -> str:
    return _label(entity, session.get(ENTITY_MODELS[entity], record_id))


def _label(entity: str, record: Any) -> str:
    return getattr(record, "fullname", None) or getattr(record, "name", None) or record.id


def _party(session: Session, spec: str, mask: int) -> tuple[ActivityParty, str]:
    entity, sep, name = spec.partition(":")
    if sep and entity.strip().lower() in RECIPIENT_ENTITIES:
        table = RECIPIENT_ENTITIES[entity.strip().lower()]
        record = find_record_txn(session, table, name)
        address = getattr(record, EMAIL_FIELDS[table][0])
        if not address:
            raise UserError(f"{table} {_label(table, record)!r} has no primary email address: give an address")
        return (ActivityParty(participationtypemask=mask, party_type=table, party_id=record.id, addressused=address),
                f"{address} ({table} {_label(table, record)})")
    try:
        address = parse_email("recipient", spec)
    except UserError:
        address = None
    if address is None:
        raise UserError(f"bad recipient {spec!r}: expected an email address or ENTITY:NAME with ENTITY one of "
                        f"{', '.join(RECIPIENT_ENTITIES)}") from None
    found = resolve_addresses_txn(session, [address.lower()]).get(address.lower(), [])
    if len(found) == 1:
        table, record_id = found[0]
        record = session.get(ENTITY_MODELS[table], record_id)
        return (ActivityParty(participationtypemask=mask, party_type=table, party_id=record_id, addressused=address),
                f"{address} ({table} {_label(table, record)})")
    return ActivityParty(participationtypemask=mask, addressused=address), address


def _sender(session: Session, draft: Draft, config: AbookConfig) -> tuple[SystemUser, Queue | None, ActivityParty]:
    user = find_record_txn(session, "systemuser", draft.user) if draft.user else None
    queue = find_record_txn(session, "queue", draft.queue) if draft.queue else None
    if user is not None and user.statecode != State.active:
        raise UserError(f"user {user.domainname} is inactive")
    if queue is not None:
        if user is None:
            info = owner_info_txn(session, "queue", queue.id, config.tracking.queue_owner)
            user = session.get(SystemUser, info.activity_owner_id) if info and info.activity_owner_id else None
            if user is None:
                raise UserError(f"queue {queue.name} has no user to own its email: give --user")
        if not queue.emailaddress:
            raise UserError(f"queue {queue.name} has no email address to send from: abook queue set "
                            f"{queue.name!r} email=ADDRESS")
        return user, queue, ActivityParty(participationtypemask=ParticipationType.sender, party_type="queue",
                                          party_id=queue.id, addressused=queue.emailaddress)
    if user is None:
        raise UserError("give the sender: --user NAME, or --queue NAME")
    if not user.internalemailaddress:
        raise UserError(f"user {user.domainname} has no email address to send from: abook user set "
                        f"{user.domainname} email=ADDRESS")
    return user, None, ActivityParty(participationtypemask=ParticipationType.sender, party_type="systemuser",
                                     party_id=user.id, addressused=user.internalemailaddress)


def _warnings(user: SystemUser, queue: Queue | None, config: AbookConfig) -> tuple[str, ...]:
    out = []
    who, method = (f"queue {queue.name}", queue.outgoing_method) if queue else (f"user {user.domainname}",
                                                                                 user.outgoing_method)
    if method != "router":
        noun = "queue" if queue else "user"
        name = queue.name if queue else user.domainname
        out.append(f"the router sends only email whose sender's outgoing method is router, and {who}'s is "
                   f"{method}: abook {noun} set {name!r} outgoing_method=router")
    if config.smtp is None:
        out.append("the config has no [smtp] table: the router sends nothing until it has one")
    elif not config.router.enabled:
        out.append("router.enabled is false: the router sends nothing")
    return tuple(out)


def create_email_txn(session: Session, draft: Draft, config: AbookConfig) -> Composed:
    """The email activity in Pending Send, its parties and attachments; its ``token`` is still empty."""
    user, queue, sender = _sender(session, draft, config)
    if not (draft.to or draft.cc or draft.bcc):
        raise UserError("no recipient: give --to, --cc or --bcc")
    size = len(draft.body.encode()) + sum(len(content) for _n, _t, content in draft.attachments)
    if size > config.tracking.max_message_bytes:
        raise UserError(f"the message holds {size} bytes, more than tracking.max_message_bytes "
                        f"({config.tracking.max_message_bytes})")
    parties = [sender]
    shown = []
    for mask, specs in ((ParticipationType.to, draft.to), (ParticipationType.cc, draft.cc),
                        (ParticipationType.bcc, draft.bcc)):
        for spec in specs:
            party, label = _party(session, spec, mask)
            parties.append(party)
            shown.append(label)
    regarding_type, regarding_id = regarding_txn(session, draft.regarding) if draft.regarding else (None, None)
    activity = Activity(activitytypecode="email", owner_id=user.id, owningbusinessunit_id=user.business_unit_id,
                        subject=draft.subject, description=draft.body, statecode=1,
                        statuscode=EmailStatus.pending_send, regarding_type=regarding_type, regarding_id=regarding_id)
    activity.email = Email(statuscode_cache=EmailStatus.pending_send, directioncode=True, mimetype="text/plain",
                           body_text=draft.body, sender=sender.addressused)
    activity.email.attachments = [Attachment(part=str(n), filename=filename, mimetype=mimetype,
                                             filesize=len(content), body=content)
                                  for n, (filename, mimetype, content) in enumerate(draft.attachments, start=2)]
    activity.parties = parties
    session.add(activity)
    session.flush()
    name = queue.name if queue else (user.fullname or user.domainname)
    return Composed(activity.id, "", f"{name} <{sender.addressused}>", tuple(shown),
                    _warnings(user, queue, config))


def list_emails_txn(session: Session, states: Sequence[str] = tuple(STATES), user: str | None = None,
                    queue: str | None = None, limit: int = 50) -> list[Listed]:
    """CRM email in the given states, newest first; by owning user and/or sending queue."""
    by_code = {int(code): name for name, code in STATES.items()}
    q = (select(Activity, Email).join(Email, Email.activity_id == Activity.id)
         .where(Email.statuscode_cache.in_([int(STATES[s]) for s in states]))
         .order_by(Activity.createdon.desc(), Activity.id).limit(limit))
    if user:
        q = q.where(Activity.owner_id == find_record_txn(session, "systemuser", user).id)
    if queue:
        queue_id = find_record_txn(session, "queue", queue).id
        q = q.where(Activity.id.in_(select(ActivityParty.activity_id).where(
            ActivityParty.participationtypemask == ParticipationType.sender, ActivityParty.party_type == "queue",
            ActivityParty.party_id == queue_id)))
    out = []
    for activity, email in session.execute(q):
        owner = session.scalar(select(SystemUser.domainname).where(SystemUser.id == activity.owner_id))
        parties = sorted(activity.parties, key=lambda p: p.id)
        to = tuple(p.addressused or f"{p.party_type} {p.party_id}" for p in parties
                   if p.participationtypemask in (ParticipationType.to, ParticipationType.cc, ParticipationType.bcc))
        sender = email.sender or next((p.addressused for p in parties
                                       if p.participationtypemask == ParticipationType.sender), None)
        out.append(Listed(activity.id, by_code[email.statuscode_cache], email.sent_at or activity.createdon, owner,
                          sender, to, activity.subject, email.tracking_token, email.delivery_attempts,
                          email.last_error))
    return out


__all__ = ["Composed", "Draft", "Listed", "STATES", "create_email_txn", "find_record_txn", "list_emails_txn"]


