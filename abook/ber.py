"""BER (X.690, definite lengths) as LDAP writes it: the primitives, and SearchResultEntry ops.

A leaf module: the server encodes its responses with it (``abook/server/encode.py``), and the directory
encodes record entries on its worker thread (``abook/directory/entries.py``, ``RowEncoder``), so the
reactor thread only frames and writes them. Every encoding here is byte-identical to ldaptor's pureber
(``tests/unit/server/test_encode.py``).
"""

from __future__ import annotations

from typing import Sequence

#: length octets for every short length, precomputed
SHORT = [bytes((n,)) for n in range(128)]
#: tag + short length headers of the three element kinds an entry is made of
OCTETS = [b"\x04" + bytes((n,)) for n in range(128)]
SET = [b"\x31" + bytes((n,)) for n in range(128)]
SEQUENCE = [b"\x30" + bytes((n,)) for n in range(128)]


def ber_length(n: int) -> bytes:
    """Definite, minimal length octets (ldaptor's ``int2berlen``)."""
    if n < 128:
        return SHORT[n]
    if n < 0x100:
        return b"\x81" + bytes((n,))
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    if n < 0x1000000:
        return b"\x83" + n.to_bytes(3, "big")
    return b"\x84" + n.to_bytes(4, "big")


def octets(value: bytes | str, tag: int = 0x04) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return bytes((tag,)) + ber_length(len(value)) + value


def as_bytes(v: bytes | str) -> bytes:
    if v.__class__ is bytes:
        return v  # type: ignore[return-value]
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def attribute(enc_name: bytes, values: Sequence[bytes | str]) -> bytes:
    """PartialAttribute: SEQUENCE { type (pre-encoded), SET OF value }."""
    if len(values) == 1:
        v = values[0]
        if v.__class__ is not bytes:
            v = as_bytes(v)
        n = len(v)
        vset = (OCTETS[n] if n < 128 else b"\x04" + ber_length(n)) + v
    else:
        vset = b"".join([(OCTETS[len(v)] if len(v) < 128 else b"\x04" + ber_length(len(v))) + v
                         for v in map(as_bytes, values)])
    n = len(vset)
    attr = enc_name + (SET[n] if n < 128 else b"\x31" + ber_length(n)) + vset
    n = len(attr)
    return (SEQUENCE[n] if n < 128 else b"\x30" + ber_length(n)) + attr


def entry(dn: bytes | str, attributes: Sequence[tuple[str, Sequence[bytes | str]]], names: dict[str, bytes],
          max_names: int = 1024) -> bytes:
    """SearchResultEntry of (name, values) pairs; ``names`` caches the names' encodings (up to ``max_names``)."""
    parts = []
    for name, values in attributes:
        enc_name = names.get(name)
        if enc_name is None:
            enc_name = octets(name)
            if len(names) < max_names:
                names[name] = enc_name
        parts.append(attribute(enc_name, values))
    return entry_op(dn, b"".join(parts))


def entry_op(dn: bytes | str, attrs: bytes) -> bytes:
    """SearchResultEntry [APPLICATION 4] { objectName, attributes } around encoded attributes."""
    body = octets(dn) + b"\x30" + ber_length(len(attrs)) + attrs
    return b"\x64" + ber_length(len(body)) + body


class SingleValued:
    """Encodes one attribute with one string value fast: ``table[n] + value`` for values of n bytes.

    ``table[n]`` holds the whole header (SEQUENCE, the type, SET, OCTET STRING and their lengths) for
    every n that keeps all three lengths short; longer values take ``attribute``."""

    __slots__ = ("name", "table")

    def __init__(self, name: str) -> None:
        self.name = octets(name)
        room = 127 - len(self.name) - 4  # SEQUENCE length = len(name) + 2 (SET hdr) + 2 (OCTETS hdr) + n
        self.table = [SEQUENCE[len(self.name) + 4 + n] + self.name + SET[n + 2] + OCTETS[n]
                      for n in range(max(0, room + 1))]

    def encode(self, value: bytes) -> bytes:
        n = len(value)
        if n < len(self.table):
            return self.table[n] + value
        return attribute(self.name, (value,))
