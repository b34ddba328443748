"""Property: whatever bytes arrive, the engine tracks them or records why not; it never raises.

Three generators, a few thousand examples in all (``ABOOK_HYPOTHESIS_SCALE`` multiplies them):
structured messages with hostile headers, charsets and MIME trees; corpus files mutated byte by byte;
and raw binary. The structured generator also runs on PostgreSQL, which refuses NULs and over-long
values that SQLite would take.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from abook.store import Store, make_engine, schema
from abook.store.models import Email, UntrackedMessage
from abook.config.model import TrackingConfig
from abook.tracking.api import REASONS, Owner, TrackRequest
from abook.tracking.engine import track_txn
from tests.unit.tracking.conftest import MAIL, Crm, seed

SCALE = float(os.environ.get("ABOOK_HYPOTHESIS_SCALE", "1"))
CONFIG = TrackingConfig()
CORPUS = [p.read_bytes() for p in sorted(MAIL.glob("*.eml"))]


def _settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sqlite_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Crm]]:
    path: Path = tmp_path_factory.mktemp("prop") / "abook.sqlite3"
    store = Store(make_engine(f"sqlite:///{path}"))
    schema.upgrade(store.engine)
    yield store, seed(store)
    store.dispose()


def check_outcome(store: Store, crm: Crm, raw: bytes, mailbox: str = "prop", direction: str = "in") -> None:
    request = TrackRequest(raw=raw, mailbox=mailbox, owner=Owner("systemuser", crm.jane), arrival="router",
                           direction=direction)  # type: ignore[arg-type]
    with store.transaction() as s:
        before = s.scalar(select(func.count()).select_from(UntrackedMessage))
        result = track_txn(s, request, CONFIG)
        after = s.scalar(select(func.count()).select_from(UntrackedMessage))
        if result.outcome == "untracked":
            assert result.reason in REASONS
            assert after == (before or 0) + 1
            reason = s.scalar(select(UntrackedMessage.reason).order_by(UntrackedMessage.id.desc()).limit(1))
            assert reason == result.reason
        else:
            assert result.outcome in ("tracked", "sighting")
            assert after == before
            raw_stored = s.scalar(select(Email.raw).where(Email.activity_id == result.activity_id))
            assert raw_stored is not None
            if result.outcome == "tracked":
                assert raw_stored == raw


# ---------------------------------------------------------------------------------------------------------
# Generators

_ADDRESSES = st.sampled_from([
    "alice@example.com", "ALICE@EXAMPLE.COM", "bob@example.net", "jane@corp.example", "support@corp.example",
    "sales@customer.example", '"quoted local"@example.org', "jörg@bücher.example", "x@xn--bcher-kva.example",
    "no-at-sign", "@", "a@", "<<>>", "undisclosed-recipients:;",
])
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_NAMES = st.one_of(_TEXT, st.sampled_from(['"Doe, Jane"', "=?utf-8?b?SsO2cmc=?=", "=?bogus?q?x?=", "=?utf-8?q?"]))
_CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "us-ascii", "unknown-8bit", "x-unknown", "koi8-r",
                             "no-such-charset", "utf-16", ""])
_ENCODINGS = st.sampled_from([b"utf-8", b"latin-1", b"cp1252"])


@st.composite
def address_list(draw: st.DrawFn) -> str:
    items = draw(st.lists(st.tuples(_NAMES, _ADDRESSES), max_size=5))
    return ", ".join(f"{n} <{a}>" if n else a for n, a in items)


@st.composite
def header_block(draw: st.DrawFn) -> list[bytes]:
    encoding = draw(_ENCODINGS).decode()
    lines: list[bytes] = []
    fields = {
        "From": address_list(), "To": address_list(), "Cc": address_list(), "Bcc": address_list(),
        "Subject": st.one_of(_TEXT, st.sampled_from(["RE: FW: CRM:0010001", "=?utf-8?q?R=C3=A9?= x", "AW: SV:"])),
        "Message-ID": st.one_of(st.sampled_from(["<dup@x>", "<a@B>", "", "<>", "no brackets", "<<nested>>"]),
                                _TEXT.map(lambda t: f"<{t}@gen>")),
        "In-Reply-To": st.sampled_from(["<dup@x>", "<a@b>", "<plain-1@example.com>", "garbage", ""]),
        "References": st.sampled_from(["<dup@x> <a@b>", "<x@y>\r\n <z@w>", "", "<<<"]),
        "Date": st.sampled_from(["Mon, 02 Nov 2026 10:00:00 +0000", "yesterday", "", "Mon, 32 Foo 99999 25:61:61 +9999"]),
        "X-Junk": _TEXT,
    }
    for name, strategy in fields.items():
        if draw(st.booleans()):
            value = draw(strategy)
            lines.append(f"{name}: {value}".encode(encoding, "replace"))
    if draw(st.booleans()):
        lines.append(draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b""))
    return lines


@st.composite
def mime_body(draw: st.DrawFn, depth: int = 0) -> tuple[list[bytes], bytes]:
    kind = draw(st.sampled_from(["text", "html", "binary", "multipart", "rfc822", "tnef"] if depth < 2
                                else ["text", "binary"]))
    charset = draw(_CHARSETS)
    text = draw(_TEXT).encode(draw(_ENCODINGS).decode(), "replace")
    cte = draw(st.sampled_from([b"", b"base64", b"quoted-printable", b"8bit", b"x-bogus"]))
    headers = [b"Content-Transfer-Encoding: " + cte] if cte else []
    if kind in ("text", "html"):
        sub = b"plain" if kind == "text" else b"html"
        return [b"Content-Type: text/" + sub + b"; charset=" + charset.encode()] + headers, text
    if kind in ("binary", "tnef"):
        name = b"winmail.dat" if kind == "tnef" else b"f.bin"
        ctype = b"application/ms-tnef" if kind == "tnef" else b"application/octet-stream"
        return ([b"Content-Type: " + ctype + b'; name="' + name + b'"',
                 b"Content-Disposition: attachment; filename=" + name] + headers, draw(st.binary(max_size=300)))
    if kind == "rfc822":
        inner_headers = draw(header_block())
        inner_mime, inner_body = draw(mime_body(depth + 1))
        return [b"Content-Type: message/rfc822"], b"\r\n".join(inner_headers + inner_mime) + b"\r\n\r\n" + inner_body
    boundary = draw(st.sampled_from([b"b1", b"", b"=_x", b"very-long-" * 10]))
    parts = draw(st.lists(mime_body(depth + 1), min_size=0, max_size=3))
    body = b""
    for part_headers, part_body in parts:
        body += b"--" + boundary + b"\r\n" + b"\r\n".join(part_headers) + b"\r\n\r\n" + part_body + b"\r\n"
    if draw(st.booleans()):
        body += b"--" + boundary + b"--\r\n"
    declared = draw(st.sampled_from([b'; boundary="' + boundary + b'"', b"", b"; boundary=wrong"]))
    return [b"MIME-Version: 1.0", b"Content-Type: multipart/mixed" + declared], body


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    headers = draw(header_block())
    mime, body = draw(mime_body())
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    return newline.join(headers + mime) + newline + newline + body.replace(b"\r\n", newline)


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 20))]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b"\r\n", b"\x00", b"=?", b"--", b":", b"\xff\xfe", b"\r\n\r\n"]))
        else:
            del data[i:]
    return bytes(data)


# ---------------------------------------------------------------------------------------------------------
# Properties


@_settings(1200)
@given(raw=messages(), direction=st.sampled_from(["in", "out"]), mailbox=st.sampled_from(["a", "b"]))
def test_generated_messages_are_tracked_or_recorded(sqlite_crm: tuple[Store, Crm], raw: bytes, direction: str,
                                                    mailbox: str) -> None:
    check_outcome(*sqlite_crm, raw, mailbox=mailbox, direction=direction)


@_settings(800)
@given(raw=mutated_corpus())
def test_mutated_corpus_messages_are_tracked_or_recorded(sqlite_crm: tuple[Store, Crm], raw: bytes) -> None:
    check_outcome(*sqlite_crm, raw)


@_settings(400)
@given(raw=st.binary(max_size=3000))
def test_arbitrary_bytes_are_tracked_or_recorded(sqlite_crm: tuple[Store, Crm], raw: bytes) -> None:
    check_outcome(*sqlite_crm, raw)


@pytest.mark.postgres
def test_generated_messages_on_postgresql(postgres_server: object) -> None:
    store = Store(make_engine(postgres_server.create_database()))  # type: ignore[attr-defined]
    schema.upgrade(store.engine)
    crm = seed(store)

    @_settings(300)
    @given(raw=st.one_of(messages(), mutated_corpus()), direction=st.sampled_from(["in", "out"]))
    def prop(raw: bytes, direction: str) -> None:
        check_outcome(store, crm, raw, direction=direction)

    try:
        prop()
    finally:
        store.dispose()
