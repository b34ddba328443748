"""Outgoing SMTP (blocking, smtplib, run on the ``mail`` pool): one message to one server, errors classified.

``send_blocking`` speaks implicit TLS, STARTTLS (refusing to go on in clear text when the server offers
none) or plain SMTP on loopback, authenticates when a user name is configured, and raises
``SmtpTransient`` (4xx replies, connection and TLS trouble: retry later) or ``SmtpPermanent`` (5xx:
give up). Error texts carry the server's reply, never the password.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass

from abook.config.routing import SmtpConfig
from abook.mailbox.errors import MailboxError

DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}


class SmtpTransient(MailboxError):
    """Try again later: a 4xx reply, a refused or dropped connection, a timeout."""


class SmtpPermanent(MailboxError):
    """Do not try again: a 5xx reply (unknown recipient, message refused, bad credentials)."""


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass(frozen=True)
class SendResult:
    #: recipients the server refused while accepting the others: address -> reply
    refused: tuple[tuple[str, str], ...] = ()


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _classified(code: int, message: str) -> MailboxError:
    return SmtpTransient(message) if 400 <= code < 500 else SmtpPermanent(message)


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    port = config.port or DEFAULT_PORTS[config.security]
    if config.security == "tls":
        context = ssl.create_default_context(cafile=config.ca_file)
        return smtplib.SMTP_SSL(config.host, port, local_hostname=config.helo_name, timeout=config.timeout,
                                context=context)
    return smtplib.SMTP(config.host, port, local_hostname=config.helo_name, timeout=config.timeout)


def send_blocking(config: SmtpConfig, envelope: Envelope) -> SendResult:
    try:
        client = _connect(config)
    except (OSError, smtplib.SMTPException) as e:
        raise SmtpTransient(f"cannot connect to {config.host}: {e}") from None
    try:
        client.ehlo()
        if config.security == "starttls":
            if not client.has_extn("starttls"):
                raise SmtpPermanent(f"{config.host} offers no STARTTLS; refusing to send in clear text")
            client.starttls(context=ssl.create_default_context(cafile=config.ca_file))
            client.ehlo()
        if config.username:
            password = config.password.reveal() if config.password else ""
            client.login(config.username, password)
        refused = client.sendmail(envelope.mail_from, list(envelope.recipients), envelope.data)
        return SendResult(tuple((rcpt, _reply(code, text)) for rcpt, (code, text) in sorted(refused.items())))
    except smtplib.SMTPRecipientsRefused as e:
        codes = [code for code, _ in e.recipients.values()]
        detail = "; ".join(f"{r}: {_reply(c, t)}" for r, (c, t) in sorted(e.recipients.items()))
        raise _classified(min(codes) if any(400 <= c < 500 for c in codes) else max(codes),
                          f"all recipients refused: {detail}") from None
    except smtplib.SMTPResponseException as e:  # sender refused, data refused, auth failed, ...
        raise _classified(e.smtp_code, f"{type(e).__name__}: {_reply(e.smtp_code, e.smtp_error)}") from None
    except (smtplib.SMTPException, OSError) as e:  # disconnected, timeout, TLS handshake
        raise SmtpTransient(f"{type(e).__name__}: {e}") from None
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
