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
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid
from typing import TYPE_CHECKING, Any

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
from abook.store import outgoing as store_outgoing
from abook.store.enums import EmailStatus, ParticipationType
from abook.store.outgoing import (  # noqa: F401 (resolve_stuck_txn: `abook outgoing` asks it here)
    Claimed, QueuedEmail, attempt_failed_txn, emails_in_txn, queue_lengths_txn, resolve_stuck_txn, sent_txn,
)
from abook.threads import IBlockingRunner

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Outgoing:
    activity_id: str
    message_id: str
    envelope: Envelope


# ---------------------------------------------------------------------------------------------------------
# transactions (the SQL is in store/outgoing.py)


def _build(email: Claimed, token: str, now: datetime, tracking: TrackingConfig) -> tuple[bytes, str]:
    """The RFC 5322 message (CRLF line ends, Bcc only in the envelope) and its Message-ID without <>."""
    sender, rcpt = email.sender, email.rcpt
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr(sender)
    if rcpt[ParticipationType.to]:
        msg["To"] = ", ".join(rcpt[ParticipationType.to])
    if rcpt[ParticipationType.cc]:
        msg["Cc"] = ", ".join(rcpt[ParticipationType.cc])
    msg["Subject"] = with_token(tracking, email.subject or "", token)
    msg["Date"] = formatdate(now.timestamp(), usegmt=True)
    message_id = make_msgid(domain=sender[1].rsplit("@", 1)[-1])
    msg["Message-ID"] = message_id
    if email.in_reply_to:
        msg["In-Reply-To"] = f"<{email.in_reply_to.strip('<>')}>"
    if email.references:
        msg["References"] = email.references
    msg.set_content(email.description or "")
    if email.body_html:
        msg.add_alternative(email.body_html, subtype="html")
    for attachment in sorted(email.attachments, key=lambda a: (len(a.part), a.part)):  # "2" before "10"
        maintype, _, subtype = (attachment.mimetype or "application/octet-stream").partition("/")
        msg.add_attachment(attachment.body, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=attachment.filename)
    return msg.as_bytes(), message_id.strip("<>")


def claim_txn(session: Session, now: datetime, limit: int, tracking: TrackingConfig) -> tuple[Outgoing, ...]:
    """Claim the due emails this daemon sends, each with its message built (once) and kept before it leaves."""
    claimed: list[Outgoing] = []
    for activity_id in store_outgoing.due_txn(session, now, limit):
        email = store_outgoing.claim_one_txn(session, activity_id)
        if email is None:
            continue
        message_id, raw = email.message_id, email.raw
        if message_id is None or raw is None:  # built once; a retry sends the same bytes
            token = token_for_email_txn(session, activity_id, tracking)
            raw, message_id = _build(email, token, now, tracking)
            store_outgoing.save_message_txn(session, activity_id, raw, message_id, token, email.sender[1],
                                            parse_message(raw).message_key)
        rcpts = tuple(dict.fromkeys(a for kind in email.rcpt.values() for a in kind))
        if not rcpts:
            store_outgoing.fail_txn(session, activity_id, "no recipient with an email address")
            continue
        claimed.append(Outgoing(activity_id, message_id, Envelope(email.sender[1], rcpts, raw)))
    return tuple(claimed)


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
