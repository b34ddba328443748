"""The tracked-mail side of the store: every SQL the tracking engine runs (the commands' read-only
queries are in ``store/tracking_views.py``).

Writes (``insert_email_txn``, ``add_sighting_txn``, ``record_untracked_txn``) run inside the caller's
transaction and never commit. Address resolution is ONE query per message whatever the number of
addresses: a UNION ALL over every email field of leads, accounts, contacts, queues and users with
``lower(field) IN (...)``, each branch served by that field's ``lower()`` index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import ARRAY, Select, String, any_, bindparam, func, literal_column, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import ScalarSelect

from abook.store.models import (
    EMAIL_FIELDS,
    ENTITY_MODELS,
    Activity,
    ActivityParty,
    Attachment,
    Email,
    EmailSighting,
    State,
    SystemUser,
    UntrackedMessage,
)
from abook.store import replies
from abook.store.users import ensure_tracking_number_txn

#: the entities whose addresses make a party of an email (SPEC 3.3); facilities are not email parties
PARTY_ENTITIES = ("lead", "account", "contact", "queue", "systemuser")
CUSTOMER_ENTITIES = frozenset({"lead", "account", "contact"})
INTERNAL_ENTITIES = frozenset({"queue", "systemuser"})


def _fit(value: str | None, length: int) -> str | None:
    return value[:length] if value else value or None


# ---------------------------------------------------------------------------------------------------------
# Address resolution: one query per message


def resolution_query(addresses: Any) -> Select[Any]:
    """(entity, id, lower(address)) of every active record with one of ``addresses`` (already lowercased)
    in any of its email fields. ``addresses``: a list, or an expanding bind parameter."""
    branches = []
    for entity in PARTY_ENTITIES:
        table: Any = ENTITY_MODELS[entity].__table__
        primary, others = EMAIL_FIELDS[entity]
        for name in (primary, *others):
            col = func.lower(table.c[name])
            branches.append(
                select(literal_column(f"'{entity}'").label("entity"), table.c.id.label("id"), col.label("address"))
                .where(_in_addresses(col, addresses), table.c.statecode == int(State.active))
            )
    return union_all(*branches)  # type: ignore[return-value]


def _address_list(dialect: str) -> Any:
    """The addresses as ONE bound value, so the statement's SQL never changes: a JSON array read with
    json_each on SQLite, an array on PostgreSQL; an expanding IN list elsewhere."""
    if dialect == "sqlite":
        values = func.json_each(bindparam("addresses")).table_valued("value")
        return select(values.c.value).scalar_subquery()
    if dialect == "postgresql":
        return bindparam("addresses", type_=ARRAY(String()))
    return bindparam("addresses", expanding=True)


def _in_addresses(col: Any, addresses: Any) -> Any:
    if isinstance(addresses, BindParameter) and isinstance(addresses.type, ARRAY):
        return col == any_(addresses)
    if isinstance(addresses, ScalarSelect):
        return col.in_(addresses.element)
    return col.in_(addresses)


#: built once per dialect: constructing the 12-branch statement costs more than running it
_RESOLVE: dict[str, Select[Any]] = {}


def _resolve_statement(dialect: str) -> Select[Any]:
    stmt = _RESOLVE.get(dialect)
    if stmt is None:
        stmt = _RESOLVE[dialect] = resolution_query(_address_list(dialect))
    return stmt


def _address_param(dialect: str, wanted: list[str]) -> Any:
    return json.dumps(wanted) if dialect == "sqlite" else wanted


def resolve_addresses_txn(session: Session, addresses: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """lowercased address -> [(entity, id), ...] in PARTY_ENTITIES order, each record once."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    conn = session.connection()
    dialect = conn.dialect.name
    rows = conn.execute(_resolve_statement(dialect), {"addresses": _address_param(dialect, wanted)})
    for entity, record_id, address in rows:
        found = out.setdefault(address, [])
        if (entity, record_id) not in found:
            found.append((entity, record_id))
    return out


# ---------------------------------------------------------------------------------------------------------
# Duplicates and correlation


_EMAIL_T = Email.__table__
_ACTIVITY_T = Activity.__table__
_BY_KEY = select(_EMAIL_T.c.activity_id).where(_EMAIL_T.c.message_key == bindparam("key"))
_BY_KEYS = select(_EMAIL_T.c.message_key, _EMAIL_T.c.activity_id).where(
    _EMAIL_T.c.message_key.in_(bindparam("keys", expanding=True)))


def email_by_key_txn(session: Session, message_key: str) -> str | None:
    return session.connection().execute(_BY_KEY, {"key": message_key}).scalar()


@dataclass(frozen=True)
class Correlated:
    activity_id: str
    message_id: str | None
    tracking_token: str | None
    regarding_type: str | None
    regarding_id: str | None


def _correlation_query(column: Any) -> Select[Any]:
    return (
        select(_EMAIL_T.c.activity_id, _EMAIL_T.c.message_id, _EMAIL_T.c.tracking_token,
               _ACTIVITY_T.c.regarding_type, _ACTIVITY_T.c.regarding_id)
        .join(_ACTIVITY_T, _ACTIVITY_T.c.id == _EMAIL_T.c.activity_id)
        .where(column.in_(bindparam("values", expanding=True)))
        .order_by(_ACTIVITY_T.c.createdon, _ACTIVITY_T.c.id)
    )


_BY_MESSAGE_IDS = _correlation_query(_EMAIL_T.c.message_id)
_BY_TOKENS = _correlation_query(_EMAIL_T.c.tracking_token)


def emails_by_message_ids_txn(session: Session, message_ids: Sequence[str]) -> list[Correlated]:
    if not message_ids:
        return []
    rows = session.connection().execute(_BY_MESSAGE_IDS, {"values": sorted(set(message_ids))})
    return [Correlated(*row) for row in rows]


def emails_by_tokens_txn(session: Session, tokens: Sequence[str]) -> list[Correlated]:
    if not tokens:
        return []
    rows = session.connection().execute(_BY_TOKENS, {"values": sorted(set(tokens))})
    return [Correlated(*row) for row in rows]


# ---------------------------------------------------------------------------------------------------------
# Writes


@dataclass(frozen=True)
class NewParty:
    mask: int
    address: str | None
    display_name: str | None
    party_type: str | None = None
    party_id: str | None = None


@dataclass(frozen=True)
class NewEmail:
    """The rows of one email activity, for ``insert_emails_txn``."""

    activity: dict[str, Any]
    email: dict[str, Any]
    parties: Sequence[NewParty]
    #: ``insert_attachment_txn``'s keyword arguments, one dict per attachment
    attachments: Sequence[dict[str, Any]]
    #: ``add_sighting_txn``'s: mailbox, external_id, arrival
    sighting: dict[str, Any]
    #: ``replies.await_rows``: the Message-IDs an uncorrelated reply waits for
    awaits: Sequence[dict[str, Any]] = ()


def _activity_row(activity: dict[str, Any]) -> dict[str, Any]:
    return {**activity, "subject": _fit(activity.get("subject"), 800)}


def _email_row(email: dict[str, Any]) -> dict[str, Any]:
    return {**email, "message_id": _fit(email.get("message_id"), 998), "sender": _fit(email.get("sender"), 320)}


def _party_rows(activity_id: str, parties: Sequence[NewParty]) -> list[dict[str, Any]]:
    return [{"activity_id": activity_id, "participationtypemask": p.mask, "party_type": p.party_type,
             "party_id": p.party_id, "addressused": _fit(p.address, 320), "display_name": _fit(p.display_name, 320)}
            for p in parties]


def _attachment_row(email_id: str, *, part: str, filename: str | None, mimetype: str, content_id: str | None,
                    body: bytes) -> dict[str, Any]:
    return {"email_id": email_id, "part": part[:64], "filename": _fit(filename, 500),
            "mimetype": _fit(mimetype, 256), "content_id": _fit(content_id, 500), "filesize": len(body),
            "body": body}


def _sighting_row(email_id: str, mailbox: str, external_id: str | None, arrival: str) -> dict[str, Any]:
    return {"email_id": email_id, "mailbox": mailbox[:320], "external_id": _fit(external_id, 1024),
            "arrival": arrival, "marked": False}


def insert_email_txn(session: Session, *, activity: dict[str, Any], email: dict[str, Any],
                     parties: Sequence[NewParty]) -> None:
    """One email activity and its parties (attachments and sightings are added separately)."""
    conn = session.connection()
    conn.execute(_ACTIVITY_T.insert(), _activity_row(activity))
    conn.execute(_EMAIL_T.insert(), _email_row(email))
    if parties:
        conn.execute(ActivityParty.__table__.insert(), _party_rows(activity["id"], parties))


def insert_emails_txn(session: Session, emails: Sequence[NewEmail]) -> None:
    """Many email activities with their parties, attachments and first sightings: one INSERT (executemany)
    per table, whatever the number of emails."""
    if not emails:
        return
    conn = session.connection()
    conn.execute(_ACTIVITY_T.insert(), [_activity_row(e.activity) for e in emails])
    conn.execute(_EMAIL_T.insert(), [_email_row(e.email) for e in emails])
    parties = [row for e in emails for row in _party_rows(e.activity["id"], e.parties)]
    if parties:
        conn.execute(ActivityParty.__table__.insert(), parties)
    attachments = [_attachment_row(e.activity["id"], **a) for e in emails for a in e.attachments]
    if attachments:
        conn.execute(Attachment.__table__.insert(), attachments)
    conn.execute(EmailSighting.__table__.insert(), [_sighting_row(e.activity["id"], **e.sighting) for e in emails])
    replies.insert_awaits_txn(session, [row for e in emails for row in e.awaits])


#: on SQLite, an attachment larger than this is written through the blob API, in pieces of this size
BLOB_CHUNK = 1 << 20


def insert_attachment_txn(session: Session, email_id: str, *, part: str, filename: str | None,
                          mimetype: str, content_id: str | None, body: bytes) -> None:
    row = _attachment_row(email_id, part=part, filename=filename, mimetype=mimetype, content_id=content_id,
                          body=body)
    conn = session.connection()
    if len(body) <= BLOB_CHUNK or conn.dialect.name != "sqlite":
        conn.execute(Attachment.__table__.insert(), [row])
        return
    # pysqlite copies a bound value, and SQLite copies it again into the row's record: a big attachment
    # costs twice its size on top of itself. body is the table's last column, so a zeroblob placeholder is
    # not materialised, and the bytes go straight to the pages.
    rowid = conn.execute(Attachment.__table__.insert().values(body=func.zeroblob(len(body))),
                         {k: v for k, v in row.items() if k != "body"}).lastrowid
    view = memoryview(body)
    with conn.connection.dbapi_connection.blobopen("attachment", "body", rowid) as blob:  # type: ignore[union-attr]
        for start in range(0, len(body), BLOB_CHUNK):
            blob.write(view[start:start + BLOB_CHUNK])


def add_sighting_txn(session: Session, email_id: str, mailbox: str, external_id: str | None,
                     arrival: str, *, new: bool = False) -> bool:
    """Record that the email was seen in ``mailbox``; False when it already was (``new``: it cannot be)."""
    if not new:
        exists = session.scalar(
            select(EmailSighting.id).where(EmailSighting.email_id == email_id, EmailSighting.mailbox == mailbox)
        )
        if exists is not None:
            return False
    session.connection().execute(EmailSighting.__table__.insert(),
                                 [_sighting_row(email_id, mailbox, external_id, arrival)])
    return True


def emails_by_keys_txn(session: Session, message_keys: Sequence[str]) -> dict[str, str]:
    """message key -> email activity id, for the keys already tracked."""
    if not message_keys:
        return {}
    rows = session.connection().execute(_BY_KEYS, {"keys": sorted(set(message_keys))})
    return {key: activity_id for key, activity_id in rows}


def mark_sighting_txn(session: Session, email_id: str, mailbox: str) -> bool:
    """The router marked the message as tracked in ``mailbox`` (SPEC 3.6); False when no such sighting."""
    result = session.execute(
        update(EmailSighting)
        .where(EmailSighting.email_id == email_id, EmailSighting.mailbox == mailbox)
        .values(marked=True)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_untracked_txn(session: Session, *, mailbox: str | None, external_id: str | None,
                         owner_type: str | None, owner_id: str | None, reason: str, detail: str | None,
                         message_id: str | None, sender: str | None, subject: str | None) -> None:
    session.connection().execute(UntrackedMessage.__table__.insert(), [{
        "mailbox": _fit(mailbox, 320), "external_id": _fit(external_id, 1024), "owner_type": owner_type,
        "owner_id": owner_id, "reason": reason, "detail": _fit(detail, 2000),
        "message_id": _fit(message_id, 998), "sender": _fit(sender, 320), "subject": _fit(subject, 800),
    }])


def set_regarding_txn(session: Session, activity_id: str, regarding_type: str | None,
                      regarding_id: str | None) -> bool:
    """Set (or, with None, clear) an email's regarding record; False when there is no such email. Emails
    correlated to it afterwards take it; those correlated before keep theirs."""
    if email_by_activity_txn(session, activity_id) is None:
        return False
    session.execute(update(Activity).where(Activity.id == activity_id)
                    .values(regarding_type=regarding_type, regarding_id=regarding_id)
                    .execution_options(synchronize_session=False))
    return True


def email_by_activity_txn(session: Session, activity_id: str) -> str | None:
    return session.scalar(select(Email.activity_id).where(Email.activity_id == activity_id))


# ---------------------------------------------------------------------------------------------------------
# Tokens


def allocate_token_parts_txn(session: Session, user_id: str) -> tuple[int, int] | None:
    """(tracking number, next counter) for a user: the number allocated once (``store.users``), the counter
    bumped by one UPDATE ... RETURNING, which takes the row's write lock first; None for no such user."""
    if session.scalar(select(SystemUser.id).where(SystemUser.id == user_id)) is None:
        return None
    number = ensure_tracking_number_txn(session, user_id)
    counter = session.scalar(
        update(SystemUser).where(SystemUser.id == user_id)
        .values(token_counter=SystemUser.token_counter + 1)
        .returning(SystemUser.token_counter)
        .execution_options(synchronize_session=False)
    )
    return number, int(counter)  # type: ignore[arg-type]


def email_token_txn(session: Session, activity_id: str) -> tuple[str | None, str | None, bool]:
    """(tracking token, owner id, exists) of an email activity."""
    row = session.execute(
        select(Email.tracking_token, Activity.owner_id)
        .join(Activity, Activity.id == Email.activity_id).where(Email.activity_id == activity_id)
    ).first()
    if row is None:
        return None, None, False
    return row[0], row[1], True


def set_email_token_txn(session: Session, activity_id: str, token: str) -> None:
    session.execute(update(Email).where(Email.activity_id == activity_id).values(tracking_token=token))
