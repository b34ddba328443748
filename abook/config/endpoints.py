"""The LDAP listeners' endpoint strings (``ldap.listen``, ``ldap.listen_tls``), checked as the daemon will
parse them: with Twisted's own parser (``twisted.internet.endpoints``), which builds an endpoint without
listening on it, so ``abook check-config`` finds a bad port or option that ``abook serve`` would trip over.

``listen`` takes plain endpoints (tcp, tcp6, unix, systemd; StartTLS is offered on them when a certificate
is configured) and ``listen_tls`` takes ``ssl:`` endpoints, which the daemon completes with ``tls_certificate``
and ``tls_key``. What Twisted would read at parse time is left to other checks: the TLS files (config/tls.py)
and systemd's inherited sockets, which exist only under systemd.

Importing ``twisted.internet.endpoints`` imports the TCP transport and, with it, pyOpenSSL when it can. A
daemon that serves no TLS keeps pyOpenSSL out (``process.leave_out_tls_stack``), so it loads its config with
``endpoints=False`` (kinds and placement checked, no Twisted) and calls ``check`` once that is decided.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator, ValidationInfo

from abook.config.base import KeyProblem, raise_problems
from abook.errors import ConfigError, ConfigErrors

EXAMPLE = '"tcp:10389:interface=127.0.0.1"'
EXAMPLE_TLS = '"ssl:10636:interface=127.0.0.1"'
PLAIN_KINDS = ("tcp", "tcp6", "unix", "systemd")
#: socket families an LDAP listener (and an LDAP worker sharing it) can use
_FAMILIES = ("INET", "INET6", "UNIX")
#: arguments that Twisted's parsers turn into numbers
_NUMBERS = {"backlog": 10, "mode": 8, "index": 10}


def problem(value: Any, tls: bool, parse: bool = True) -> str | None:
    """Why ``value`` cannot serve as a plain (``tls`` False) or LDAPS listener, or None. With ``parse``,
    Twisted's parser reads its arguments as the daemon's ``strports.service`` will."""
    example = EXAMPLE_TLS if tls else EXAMPLE
    if not isinstance(value, str) or ":" not in value:
        return f"expected a Twisted endpoint string such as {example}, got {value!r}"
    kind = value.split(":", 1)[0]
    if tls and kind != "ssl":
        return (f"expected an ssl: endpoint such as {example}, got {value!r} (plain LDAP and StartTLS "
                "listen on ldap.listen)")
    if not tls and kind == "ssl":
        return f"an ssl: endpoint serves LDAPS: give {value!r} in ldap.listen_tls"
    if not tls and kind not in PLAIN_KINDS:
        return f"expected a Twisted endpoint string such as {example}, got {value!r}"
    if not parse:
        return None
    why = _twisted_problem(value, kind)
    return f"bad endpoint {value!r}: {why}" if why else None


def _parser(kind: str) -> Callable[..., Any]:
    from twisted.internet import endpoints

    parsers = {"tcp": endpoints._parseTCP, "unix": endpoints._parseUNIX, "ssl": endpoints._parseSSL,
               "tcp6": endpoints._TCP6ServerParser()._parseServer, "systemd": endpoints._SystemdParser()._parseServer}
    return parsers[kind]


def _twisted_problem(value: str, kind: str) -> str | None:
    from twisted.internet import endpoints

    try:
        args, kwargs = endpoints._parse(value)
    except (ValueError, RuntimeError) as e:  # e.g. a trailing backslash, which escapes nothing
        return f"Twisted cannot read it ({e})"
    try:
        bound = inspect.signature(_parser(kind)).bind(None, *args[1:], **kwargs).arguments
    except TypeError as e:  # an unknown option, a missing port, too many arguments
        return _plain(str(e), kind)
    if "port" in bound:
        port = bound["port"]
        if not (port.isdigit() and 1 <= int(port) <= 65535):
            return f"port: expected a number from 1 to 65535, got {port!r}"
    for name, base in _NUMBERS.items():
        if name in bound and isinstance(bound[name], str):
            try:
                int(bound[name], base)
            except ValueError:
                return f"{name}: expected a number, got {bound[name]!r}"
    if kind == "systemd":
        # Twisted reads the inherited sockets at parse time, which exist only under systemd: check the rest
        if ("index" in bound) == ("name" in bound):
            return "give exactly one of index= and name="
        if bound.get("domain") not in _FAMILIES:
            return f"domain: expected INET, INET6 or UNIX, got {bound.get('domain')!r}"
        return None
    if kind == "ssl":
        return None  # Twisted reads the certificate here: the TLS files are checked on their own (config/tls.py)
    try:
        endpoints.serverFromString(None, value)  # builds the endpoint; listening is the daemon's
    except (ValueError, TypeError, KeyError) as e:
        return str(e)
    return None


def _plain(message: str, kind: str) -> str:
    """Python's words for a call that does not fit Twisted's parser, in the words of endpoint strings."""
    options = ", ".join(p for p in inspect.signature(_parser(kind)).parameters if p not in ("factory", "reactor"))
    unknown = re.search(r"unexpected keyword argument '(\w*)'", message)
    if unknown:
        return f"unknown option {unknown.group(1)!r}; {kind}: takes {options}"
    missing = re.search(r"missing a required argument: '(\w+)'", message)
    if missing:
        return f"{missing.group(1)} is missing; {kind}: takes {options}"
    return f"{message}; {kind}: takes {options}"


def _validator(tls: bool) -> Callable[[Any, ValidationInfo], Any]:
    def validate(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ValueError(problem(value, tls, parse=False))
        parse = (info.context or {}).get("endpoints", True)
        problems = [(n, problem(v, tls, parse)) for n, v in enumerate(value)]
        found = [(n, why) for n, why in problems if why]
        if found:
            raise_problems([KeyProblem(n, why) for n, why in found])
        return value

    return validate


#: ``ldap.listen``: one endpoint string or a list of them
PlainEndpoints = Annotated[list[str], BeforeValidator(_validator(tls=False))]
#: ``ldap.listen_tls``: one ``ssl:`` endpoint string or a list of them
TlsEndpoints = Annotated[list[str], BeforeValidator(_validator(tls=True))]

HTTP_EXAMPLE = '"tcp:9464:interface=127.0.0.1"'


def http_problem(value: Any, parse: bool = True) -> str | None:
    """Why ``value`` cannot serve ``/metrics`` and ``/healthz`` (plain HTTP: tcp, tcp6, unix, systemd), or None."""
    if value == "":
        return None  # off
    if isinstance(value, str) and value.split(":", 1)[0] == "ssl":
        return (f"metrics are served over plain HTTP: give a tcp: endpoint such as {HTTP_EXAMPLE} (on a "
                f"loopback or private address), got {value!r}")
    why = problem(value, tls=False, parse=parse)
    return why.replace(EXAMPLE, HTTP_EXAMPLE) if why else None


def _http_validator(value: Any, info: ValidationInfo) -> Any:
    why = http_problem(value, (info.context or {}).get("endpoints", True))
    if why:
        raise ValueError(why)
    return value


#: ``metrics.listen``: one plain endpoint string, or "" (off)
HttpEndpoint = Annotated[str, BeforeValidator(_http_validator)]


def check(config: Any) -> None:
    """Parse the LDAP endpoints of a config loaded with ``endpoints=False`` (the daemon, once it has decided
    whether pyOpenSSL may load): raise ConfigErrors, one line per endpoint Twisted cannot parse."""
    file = Path(config.config_file).name if config.config_file else ""
    found = []
    for key, values, tls in (("listen", config.ldap.listen, False), ("listen_tls", config.ldap.listen_tls, True)):
        for n, value in enumerate(values):
            why = problem(value, tls)
            if why:
                found.append(ConfigError(why, path=f"ldap.{key}[{n}]", file=file))
    why = http_problem(config.metrics.listen)
    if why:
        found.append(ConfigError(why, path="metrics.listen", file=file))
    if len(found) == 1:
        raise found[0]
    if found:
        raise ConfigErrors(found)


__all__ = ["HttpEndpoint", "PlainEndpoints", "TlsEndpoints", "check", "http_problem", "problem"]
