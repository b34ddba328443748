"""What the backends share: credentials, and for IMAP/POP3 TLS contexts, default ports, error mapping."""

from __future__ import annotations

import ssl
from typing import Optional

from abook.config.mail import MailboxConfig
from abook.mailbox.errors import AuthFailed, MailboxError, Unavailable

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


def credentials(config: MailboxConfig) -> tuple[str, str]:
    """The configured username and password (revealed only to hand them to the server)."""
    if config.username is None or config.password is None:
        raise AuthFailed(f"{config.name}: no username/password configured")
    return config.username, config.password.reveal()


def login_refused(config: MailboxConfig, reason: str, transient: tuple[str, ...]) -> MailboxError:
    """The server said no to the login: a transient condition (its response code says so) or bad credentials."""
    if any(code in reason for code in transient):
        return Unavailable(f"{config.name}: {where(config)}: {reason}")
    return AuthFailed(f"{config.name}: {where(config)} refused the login of {config.username}: {reason}")
