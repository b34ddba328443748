"""Outgoing mail through Microsoft Graph (``[smtp] transport = "graph"``): ``sendMail`` with the MIME message.

The outgoing queue's claim is unchanged (Pending Send -> Sending and the exact bytes stored before
anything is sent; an email found in Sending at start is left for an admin), so the guarantee is the SMTP
path's. Graph adds one: before each ``sendMail`` the sender's Sent Items are searched for the email's
Message-ID (Exchange keeps the Message-ID of a MIME message it sends), so an attempt whose reply was
lost (a timeout, a dropped connection after Exchange accepted it) or an admin's ``abook outgoing retry``
of an email stuck in Sending is recorded as sent instead of being sent twice.

Graph takes the recipients from the MIME headers, not from an envelope: Bcc recipients (only in the
envelope) are added as a ``Bcc:`` header, which Exchange strips from the copies it delivers. The body is
the base64 of the message, ``Content-Type: text/plain``, as documented for sending MIME.
"""

from __future__ import annotations

import base64
import threading
from email import message_from_bytes
from email.policy import compat32
from email.utils import getaddresses
from typing import Any, Callable
from urllib.parse import quote

from abook.config.routing import SmtpConfig
from abook.mailbox.errors import AuthFailed, MailboxError, MailboxMissing, Unavailable
from abook.mailbox.graph_client import GraphClient, auth_for
from abook.mailbox.smtp import Envelope, SendResult, SmtpPermanent, SmtpTransient


def with_bcc(envelope: Envelope) -> bytes:
    """The message with a Bcc header naming the envelope's recipients that To and Cc do not."""
    headers = message_from_bytes(envelope.data, policy=compat32)
    shown = {a.lower() for _, a in getaddresses(headers.get_all("To", []) + headers.get_all("Cc", []))}
    bcc = [r for r in envelope.recipients if r.lower() not in shown]
    if not bcc:
        return envelope.data
    return b"Bcc: " + ", ".join(bcc).encode() + b"\r\n" + envelope.data


def already_sent(client: GraphClient, user: str, message_id: str) -> bool:
    quoted = f"<{message_id}>".replace("'", "''")
    found = client.json("GET", f"{user}/mailFolders/sentitems/messages?$select=id&$top=1&$filter="
                               + quote(f"internetMessageId eq '{quoted}'"))
    return bool(found and found.get("value"))


def send_blocking(config: SmtpConfig, envelope: Envelope, message_id: str,
                  wait: Callable[[float], Any] = threading.Event().wait) -> SendResult:
    assert config.graph is not None
    user = "/users/" + quote(envelope.mail_from, safe="@")
    client = GraphClient(auth_for(config.graph, config.ca_file, config.timeout), f"sendMail as {envelope.mail_from}",
                         wait)
    try:
        if already_sent(client, user, message_id):
            return SendResult()  # a previous attempt went out: its reply was lost
        client.request("POST", f"{user}/sendMail", data=base64.b64encode(with_bcc(envelope)),
                       headers={"Content-Type": "text/plain"})
    except Unavailable as e:  # throttled, timed out, connection lost: retried by the queue's back-off
        raise SmtpTransient(str(e)) from None
    except (AuthFailed, MailboxMissing) as e:
        raise SmtpPermanent(str(e)) from None
    except MailboxError as e:  # the message refused (400 ErrorMimeContent..., recipients): not worth retrying
        raise SmtpPermanent(str(e)) from None
    return SendResult()
