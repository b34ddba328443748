"""The outgoing queue: CRM email in Pending Send (6) whose owner uses ``router`` is sent over SMTP (or through
Microsoft Graph ``sendMail`` as the sender's mailbox, ``mailbox/graph_send.py``).

Claim (one transaction): a conditional UPDATE 6 -> Sending (7), the tracking token appended to the
subject, the RFC 5322 message (with the email's attachments, e.g. from `abook email compose`) built with a
fresh Message-ID and stored *before* anything is sent.
Send (mail pool, ``mailbox/smtp.py``). Then Sent (3), or back to 6 with a later ``next_attempt_at``
after a transient failure, or Failed (8) with the reason when the failure is permanent or the attempts
are spent. An email found in Sending at start was in flight when the daemon died: it is reported (log,
``abook status``, ``abook outgoing stuck``) and left for an admin (``abook outgoing retry|fail ID``),
never sent again silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from abook.monitor import metrics
from abook.config.model import TrackingConfig
from abook.config.routing import RouterConfig, SmtpConfig
from abook.mailbox.errors import MailboxError
from abook.mailbox.smtp import Envelope, SmtpPermanent, send_blocking
from abook.routing.poller import crash_point, settled
from abook.tracking.api import token_for_email_txn
from abook.tracking.tokens import with_token
from abook.tracking.parse import parse_message
from abook.store import Store, outage
from abook.store.models import (
    EMAIL_FIELDS, ENTITY_MODELS, Activity, ActivityParty, Email, EmailStatus, ParticipationType, Queue, SystemUser,
)
from abook.threads import IBlockingRunner


@dataclass(frozen=True)
class Outgoing:
    activity_id: str
    message_id: str
    envelope: Envelope


@dataclass(frozen=True)
class QueuedEmail:
    activity_id: str
    subject: str | None
    attempts: int
    last_error: str | None


# ---------------------------------------------------------------------------------------------------------
# transactions


def _sender(session: Session, activity: Activity) -> tuple[str, str] | None:
    """(display name, address) of the user or queue sending, when its outgoing method is router."""
    for party in activity.parties:
        if party.participationtypemask == ParticipationType.sender and party.party_type == "queue":
            queue = session.get(Queue, party.party_id)
            if queue is None or queue.outgoing_method != "router" or not queue.emailaddress:
                return None
            return queue.name, queue.emailaddress
    user = session.get(SystemUser, activity.owner_id)
    if user is None or user.outgoing_method != "router" or not user.internalemailaddress:
        return None
    return user.fullname or "", user.internalemailaddress


def _address(session: Session, party: ActivityParty) -> str | None:
    if party.addressused:
        return party.addressused
    if party.party_type in ENTITY_MODELS and party.party_id:
        record = session.get(ENTITY_MODELS[party.party_type], party.party_id)
        return getattr(record, EMAIL_FIELDS[party.party_type][0], None) if record else None
    return None


def _recipients(session: Session, activity: Activity) -> dict[int, list[str]]:
    rcpt: dict[int, list[str]] = {ParticipationType.to: [], ParticipationType.cc: [], ParticipationType.bcc: []}
    for party in sorted(activity.parties, key=lambda p: p.id):
        if party.participationtypemask in rcpt:
            address = _address(session, party)
            if address:
                rcpt[party.participationtypemask].append(address)
    return rcpt


def _build(activity: Activity, email: Email, sender: tuple[str, str], rcpt: dict[int, list[str]], token: str,
           now: datetime, tracking: TrackingConfig) -> tuple[bytes, str]:
    """The RFC 5322 message (CRLF line ends, Bcc only in the envelope) and its Message-ID without <>."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr(sender)
    if rcpt[ParticipationType.to]:
        msg["To"] = ", ".join(rcpt[ParticipationType.to])
    if rcpt[ParticipationType.cc]:
        msg["Cc"] = ", ".join(rcpt[ParticipationType.cc])
    msg["Subject"] = with_token(tracking, activity.subject or "", token)
    msg["Date"] = formatdate(now.timestamp(), usegmt=True)
    message_id = make_msgid(domain=sender[1].rsplit("@", 1)[-1])
    msg["Message-ID"] = message_id
    if email.in_reply_to:
        msg["In-Reply-To"] = f"<{email.in_reply_to.strip('<>')}>"
    if email.references:
        msg["References"] = email.references
    msg.set_content(activity.description or "")
    if email.body_html:
        msg.add_alternative(email.body_html, subtype="html")
    for attachment in sorted(email.attachments, key=lambda a: (len(a.part), a.part)):  # "2" before "10"
        maintype, _, subtype = (attachment.mimetype or "application/octet-stream").partition("/")
        msg.add_attachment(attachment.body, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=attachment.filename)
    return msg.as_bytes(), message_id.strip("<>")


def _router_sent():  # type: ignore[no-untyped-def]
    """SQL: the activity's sender uses the router (a queue sender decides, else the owning user)."""
    queue_sender = select(ActivityParty.activity_id).where(
        ActivityParty.participationtypemask == ParticipationType.sender, ActivityParty.party_type == "queue")
    router_queue = queue_sender.join(Queue, Queue.id == ActivityParty.party_id).where(Queue.outgoing_method == "router")
    router_user = select(SystemUser.id).where(SystemUser.outgoing_method == "router")
    return or_(Activity.id.in_(router_queue), and_(Activity.id.not_in(queue_sender), Activity.owner_id.in_(router_user)))


def claim_txn(session: Session, now: datetime, limit: int, tracking: TrackingConfig) -> tuple[Outgoing, ...]:
    candidates = session.scalars(
        select(Email.activity_id).join(Activity, Activity.id == Email.activity_id)
        .where(Email.statuscode_cache == EmailStatus.pending_send,
               or_(Email.next_attempt_at.is_(None), Email.next_attempt_at <= now), _router_sent())
        .order_by(Activity.createdon, Email.activity_id).limit(limit)).all()
    claimed: list[Outgoing] = []
    for activity_id in candidates:
        activity = session.get(Activity, activity_id)
        assert activity is not None and activity.email is not None
        sender = _sender(session, activity)
        if sender is None:
            continue  # the owner sends with their own mail client
        won = session.execute(update(Email).where(Email.activity_id == activity_id,
                                                  Email.statuscode_cache == EmailStatus.pending_send)
                              .values(statuscode_cache=EmailStatus.sending)
                              .execution_options(synchronize_session=False))
        if won.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another daemon claimed it
        session.refresh(activity.email)
        email = activity.email
        activity.statuscode = EmailStatus.sending
        activity.statecode = 1
        email.directioncode = True
        rcpt = _recipients(session, activity)
        rcpts = tuple(dict.fromkeys(a for kind in rcpt.values() for a in kind))
        if email.message_id is None or email.raw is None:  # built once; a retry sends the same bytes
            token = token_for_email_txn(session, activity_id, tracking)
            raw, message_id = _build(activity, email, sender, rcpt, token, now, tracking)
            email.raw, email.message_id, email.tracking_token, email.sender = raw, message_id, token, sender[1]
            email.message_key = parse_message(raw).message_key
        if not rcpts:
            _fail(activity, email, "no recipient with an email address")
            continue
        claimed.append(Outgoing(activity_id, email.message_id, Envelope(sender[1], rcpts, email.raw)))
    return tuple(claimed)


def _fail(activity: Activity, email: Email, error: str) -> None:
    email.statuscode_cache = EmailStatus.failed
    activity.statuscode, activity.statecode = EmailStatus.failed, 0
    email.last_error = error[:2000]


def sent_txn(session: Session, activity_id: str, now: datetime, note: str | None) -> None:
    activity = session.get(Activity, activity_id)
    assert activity is not None and activity.email is not None
    email = activity.email
    email.statuscode_cache = activity.statuscode = EmailStatus.sent
    activity.statecode, activity.actualend = 1, now
    email.sent_at, email.delivery_attempts, email.last_error = now, email.delivery_attempts + 1, note


def attempt_failed_txn(session: Session, activity_id: str, error: str, permanent: bool, now: datetime,
                       max_attempts: int, backoff: float, backoff_max: float) -> int:
    """Record a failed attempt; return the new status (6 to retry later, 8 failed)."""
    activity = session.get(Activity, activity_id)
    assert activity is not None and activity.email is not None
    email = activity.email
    email.delivery_attempts += 1
    if permanent or email.delivery_attempts >= max_attempts:
        _fail(activity, email, error)
        return EmailStatus.failed
    email.statuscode_cache = activity.statuscode = EmailStatus.pending_send
    email.last_error = error[:2000]
    delay = min(backoff * 2 ** (email.delivery_attempts - 1), backoff_max)
    email.next_attempt_at = now + timedelta(seconds=delay)
    return EmailStatus.pending_send


def emails_in_txn(session: Session, status: int) -> tuple[QueuedEmail, ...]:
    rows = session.execute(select(Email.activity_id, Activity.subject, Email.delivery_attempts, Email.last_error)
                           .join(Activity, Activity.id == Email.activity_id)
                           .where(Email.statuscode_cache == status).order_by(Activity.createdon))
    return tuple(QueuedEmail(r.activity_id, r.subject, r.delivery_attempts, r.last_error) for r in rows)


def queue_lengths_txn(session: Session) -> dict[str, int]:
    rows = dict(session.execute(select(Email.statuscode_cache, func.count()).group_by(Email.statuscode_cache)).all())
    return {"pending": rows.get(EmailStatus.pending_send, 0), "sending": rows.get(EmailStatus.sending, 0),
            "failed": rows.get(EmailStatus.failed, 0)}


def resolve_stuck_txn(session: Session, activity_id: str, action: str) -> bool:
    """An admin's decision on an email stuck in Sending: "retry" (back to 6, same Message-ID) or "fail" (8)."""
    activity = session.get(Activity, activity_id)
    if activity is None or activity.email is None or activity.email.statuscode_cache != EmailStatus.sending:
        return False
    if action == "retry":
        activity.email.statuscode_cache = activity.statuscode = EmailStatus.pending_send
        activity.email.next_attempt_at = None
    else:
        _fail(activity, activity.email, "marked failed by an admin after it was found in sending")
    return True


# ---------------------------------------------------------------------------------------------------------
# the service


class OutgoingService(Service):
    log = Logger()

    def __init__(self, store: Store, mail: IBlockingRunner, clock: Any, smtp: SmtpConfig, router: RouterConfig,
                 tracking: TrackingConfig) -> None:
        self.setName("outgoing")
        self.store, self.mail, self.clock = store, mail, clock
        self.smtp, self.router, self.tracking = smtp, router, tracking
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = clock
        self._current: defer.Deferred | None = None
        self._reported = False

    def startService(self) -> None:
        super().startService()
        self._loop.start(self.router.outgoing_interval, now=True)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return settled(self._current) if self._current is not None else defer.succeed(None)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def tick(self) -> defer.Deferred:
        d = defer.ensureDeferred(self._send_due())
        d.addErrback(lambda f: outage.log_failure(self.log, f, "outgoing queue run failed"))
        self._current = d
        d.addBoth(self._idle)
        return d

    def _idle(self, _: Any) -> None:
        self._current = None

    async def _send_due(self) -> None:
        if not self._reported:
            for stuck in await self.store.run(emails_in_txn, EmailStatus.sending):
                self.log.warn("email {activity_id} ({subject!r}) was being sent when abook stopped: it may or may "
                              "not have left; not resent. Check, then `abook outgoing retry|fail {activity_id}`",
                              activity_id=stuck.activity_id, subject=stuck.subject)
            self._reported = True
        claimed = await self.store.run(claim_txn, self._now(), self.router.outgoing_batch, self.tracking)
        for out in claimed:
            if not self.running:
                break
            crash_point("after_claim")
            await self._send(out)

    async def _send(self, out: Outgoing) -> None:
        try:
            if self.smtp.transport == "graph":
                from abook.mailbox import graph_send

                result = await self.mail.run(graph_send.send_blocking, self.smtp, out.envelope, out.message_id)
            else:
                result = await self.mail.run(send_blocking, self.smtp, out.envelope)
        except Exception as e:
            permanent = isinstance(e, SmtpPermanent)
            error = str(e) if isinstance(e, MailboxError) else f"{type(e).__name__}: {e}"
            status = await self.store.run(attempt_failed_txn, out.activity_id, error, permanent, self._now(),
                                          self.smtp.max_attempts, self.smtp.retry_backoff, self.smtp.retry_backoff_max)
            self.log.warn("sending email {activity_id} failed ({outcome}): {error}", activity_id=out.activity_id,
                          outcome="failed" if status == EmailStatus.failed else "will retry", error=error)
            metrics.get().outgoing.labels("failed" if status == EmailStatus.failed else "retry").inc()
            return
        note = "; ".join(f"refused {r}: {reply}" for r, reply in result.refused) or None
        await self.store.run(sent_txn, out.activity_id, self._now(), note)
        metrics.get().outgoing.labels("sent").inc()
        self.log.info("sent email {activity_id} as <{message_id}> to {count} recipients",
                      activity_id=out.activity_id, message_id=out.message_id, count=len(out.envelope.recipients))
