"""What the socket-based backends (IMAP, POP3) share: TLS contexts, default ports, socket error mapping."""

from __future__ import annotations

import ssl
from typing import Optional

from abook.config.mail import MailboxConfig
from abook.mailbox.errors import Unavailable

#: (protocol, security) -> the IANA port
DEFAULT_PORTS = {
    ("imap", "tls"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
    ("pop3", "tls"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110,
}


def port_of(config: MailboxConfig) -> int:
    return config.port if config.port is not None else DEFAULT_PORTS[(config.type, config.security)]


def tls_context(config: MailboxConfig) -> Optional[ssl.SSLContext]:
    """A verifying client context (the system CAs, or ``ca_file``); None when security is "none"."""
    if config.security == "none":
        return None
    context = ssl.create_default_context(cafile=config.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def where(config: MailboxConfig) -> str:
    return f"{config.type}://{config.host}:{port_of(config)}"


def unavailable(config: MailboxConfig, error: BaseException) -> Unavailable:
    """A socket-level failure (refused, timed out, TLS failed) as a transient error naming the server."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = f"TLS certificate not trusted: {error.verify_message}"
    elif isinstance(error, TimeoutError):
        reason = "timed out"
    else:
        reason = error.strerror or str(error) if isinstance(error, OSError) else str(error)
    return Unavailable(f"{config.name}: {where(config)}: {reason}")
