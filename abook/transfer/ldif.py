"""A streaming RFC 2849 LDIF reader and writer that keeps line numbers for error messages.

ldaptor's ``fromLDIFFile`` re-splits its buffer on every line (quadratic on a whole file), so this reader
walks the file once: ``version:`` optional, ``#`` comments (folded ones too), folded lines, ``::`` base64
values, CRLF or LF line ends. Change records other than ``changetype: add`` are refused.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from abook.errors import UserError


class LdifError(UserError):
    """A malformed LDIF file: the message names the file and line."""

    def __init__(self, file: str, line: int, msg: str) -> None:
        self.file = file
        self.line = line
        self.msg = msg
        super().__init__(f"{file}:{line}: {msg}")


@dataclass(slots=True)
class Attr:
    #: the attribute type as written, without options (``cn;lang-de`` -> ``cn``)
    name: str
    #: the value: text when it is UTF-8, else the raw bytes
    value: str | bytes
    line: int


@dataclass(slots=True)
class LdifRecord:
    dn: str
    line: int
    attrs: list[Attr]


def read_ldif(stream: BinaryIO, file: str, progress: object | None = None) -> Iterator[LdifRecord]:
    """Yield each record of an LDIF stream. ``progress.advance(nbytes)`` is called as bytes are read."""
    advance = getattr(progress, "advance", None)
    lines: list[tuple[int, bytes]] = []  # the current record's logical lines (first physical line number)
    in_comment = False
    first = True
    lineno = 0
    read = 0
    for raw in stream:
        lineno += 1
        read += len(raw)
        line = raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw.rstrip(b"\r")
        if line[:1] == b" ":
            if in_comment:
                continue
            if not lines:
                raise LdifError(file, lineno, "a continuation line (starting with a space) follows no line")
            start, text = lines[-1]
            lines[-1] = (start, text + line[1:])
            continue
        in_comment = False
        if not line:
            if advance is not None:
                advance(read)
                read = 0
            if lines:
                record = _record(lines, file, first)
                first = False
                lines = []
                if record is not None:
                    yield record
            continue
        if line[:1] == b"#":
            in_comment = True
            continue
        lines.append((lineno, line))
    if lines:
        record = _record(lines, file, first)
        if record is not None:
            yield record


def _record(lines: list[tuple[int, bytes]], file: str, first: bool) -> LdifRecord | None:
    if first and lines[0][1][:8].lower() == b"version:":
        lineno, text = lines[0]
        if text[8:].strip() != b"1":
            raise LdifError(file, lineno, "only LDIF version 1 is understood")
        lines = lines[1:]
        if not lines:
            return None
    dn_line, dn_text = lines[0]
    name, dn = _split(dn_text, dn_line, file)
    if name.lower() != "dn":
        raise LdifError(file, dn_line, f"a record must start with \"dn:\", not {name!r}")
    if isinstance(dn, bytes):
        raise LdifError(file, dn_line, "the DN is not UTF-8")
    attrs: list[Attr] = []
    for lineno, text in lines[1:]:
        name, value = _split(text, lineno, file)
        if name.lower() == "changetype":
            if value != "add":
                raise LdifError(file, lineno, f"change records are not supported (changetype: {value!s})")
            continue
        if name.lower() == "control":
            raise LdifError(file, lineno, "change records are not supported (control:)")
        attrs.append(Attr(name, value, lineno))
    return LdifRecord(dn, dn_line, attrs)


_NAMES: dict[bytes, str] = {}


def _attribute_name(raw: bytes, lineno: int, file: str) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise LdifError(file, lineno, "an attribute name must be ASCII") from None
    name = name.split(";", 1)[0].strip()
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise LdifError(file, lineno, f"{name!r} is not an attribute name")
    if len(_NAMES) < 10_000:
        _NAMES[raw] = name
    return name


def _split(text: bytes, lineno: int, file: str) -> tuple[str, str | bytes]:
    colon = text.find(b":")
    if colon <= 0:
        raise LdifError(file, lineno, "expected \"attribute: value\"")
    raw_name = text[:colon]
    name = _NAMES.get(raw_name)
    if name is None:
        name = _attribute_name(raw_name, lineno, file)
    rest = text[colon + 1:]
    if rest[:1] == b" ":  # the common case: "name: value"
        raw = rest[1:].lstrip(b" ") if rest[1:2] == b" " else rest[1:]
    elif rest[:1] == b":":
        try:
            raw = base64.b64decode(rest[1:].strip(), validate=True)
        except (binascii.Error, ValueError):
            raise LdifError(file, lineno, f"the base64 value of {name} is not valid base64") from None
    elif rest[:1] == b"<":
        raise LdifError(file, lineno, f"{name}: values given by URL (\":<\") are not supported")
    else:
        raw = rest.lstrip(b" ")
    try:
        return name, raw.decode("utf-8")
    except UnicodeDecodeError:
        return name, raw


# ---------------------------------------------------------------------------------------------------------
# Writing


def _is_safe(value: str) -> bool:
    """RFC 2849 SAFE-STRING: ASCII without NUL/CR/LF, not starting with space, ':' or '<', no trailing space."""
    if not value:
        return True
    if value[0] in " :<" or value[-1] == " ":
        return False
    return value.isascii() and not any(c in value for c in "\0\r\n")


def format_attr(name: str, value: str | bytes, width: int = 76) -> str:
    """One ``name: value`` line (``name:: base64`` where RFC 2849 requires it), folded at ``width``."""
    if isinstance(value, str) and _is_safe(value):
        line = f"{name}: {value}"
    else:
        raw = value.encode("utf-8") if isinstance(value, str) else value
        line = f"{name}:: {base64.b64encode(raw).decode('ascii')}"
    if len(line) <= width:
        return line + "\n"
    parts = [line[:width]]
    for i in range(width, len(line), width - 1):
        parts.append(" " + line[i:i + width - 1])
    return "\n".join(parts) + "\n"


def format_record(dn: str, attrs: list[tuple[str, str | bytes]]) -> str:
    return format_attr("dn", dn) + "".join(format_attr(n, v) for n, v in attrs) + "\n"
