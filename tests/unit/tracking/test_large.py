"""A 50 MB message with attachments is tracked whole, in seconds, without piling up decoded copies."""

from __future__ import annotations

import base64
import os
import time
import tracemalloc

import pytest
from sqlalchemy import func, select

from abook.store import Store
from abook.store.models import Attachment, Email
from tests.unit.tracking.conftest import Crm, seed, track, user


def big_message(attachment_bytes: int, blob: bytes | None = None) -> bytes:
    blob = blob if blob is not None else os.urandom(attachment_bytes)
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    head = (b"From: Bob <bob@example.net>\r\nTo: jane@corp.example\r\nSubject: the scans\r\n"
            b"Message-ID: <big@example.net>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
            b"--B\r\nContent-Type: text/plain\r\n\r\nAll of them.\r\n")
    parts = [head]
    for name in (b"scan1.tif", b"scan2.tif"):
        parts.append(b"--B\r\nContent-Type: image/tiff\r\nContent-Transfer-Encoding: base64\r\n"
                     b"Content-Disposition: attachment; filename=" + name + b"\r\n\r\n" + encoded)
    parts.append(b"--B--\r\n")
    return b"".join(parts)


@pytest.mark.slow
def test_a_50_mb_message_is_tracked_with_its_attachments(sqlite_store: Store) -> None:
    crm: Crm = seed(sqlite_store)
    blob = os.urandom(18_500_000)
    raw = big_message(len(blob), blob)
    assert len(raw) > 50_000_000
    tracemalloc.start()
    started = time.perf_counter()
    result = track(sqlite_store, raw, user(crm.jane))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.outcome == "tracked"
    with sqlite_store.transaction() as s:
        sizes = s.scalars(select(Attachment.filesize).where(Attachment.email_id == result.activity_id)).all()
        assert sorted(sizes) == [18_500_000, 18_500_000]
        # written through SQLite's blob API in pieces: every byte where it belongs
        assert s.scalars(select(Attachment.body)).all() == [blob, blob]
        assert s.scalar(select(func.length(Email.raw))) == len(raw)
    assert peak < 4 * len(raw), f"peak {peak / 1e6:.0f} MB for a {len(raw) / 1e6:.0f} MB message"
    assert elapsed < 60, f"{elapsed:.1f}s"
    print(f"50 MB message: {elapsed:.1f}s, peak {peak / 1e6:.0f} MB")
