"""Peak memory of the daemon for one large message, read from a mailbox and tracked.

    .venv/bin/python bench/mail_memory.py --mb 50 --kind attachments   # one 50 MB message, two attachments
    .venv/bin/python bench/mail_memory.py --mb 50 --kind text          # one 50 MB text/plain body
    .venv/bin/python bench/mail_memory.py --mb 20 --protocol pop3

A real ``abook serve`` (SQLite store in a temporary directory) polls one mailbox on the fake IMAP or POP3
server of the tests (tests/fakes, in this process, so its copy of the message is not counted). Once the
daemon has started and polled the empty mailbox, the message is delivered; when it is tracked and marked,
the daemon's VmHWM (peak resident memory, /proc/PID/status) is compared with its VmHWM before. Printed:
the message size, the daemon's peak and resident memory before and after, and the peak's growth as a
multiple of the message size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.fault_server import large_message  # noqa: E402
from tests.fakes.imap_server import FakeImapServer  # noqa: E402
from tests.fakes.pop3_server import FakePop3Server  # noqa: E402
from tests.helpers import memory, wait_until  # noqa: E402
from tests.integration.test_mailbox_faults import fake_mailbox, polled, tracked  # noqa: E402
from tests.integration.test_router_imap import _init, _serve, _stop  # noqa: E402
from tests.unit.routing.conftest import seed_org  # noqa: E402


def measure(size: int, kind: str, protocol: str) -> tuple[int, dict[str, float], dict[str, float]]:
    """(message bytes, daemon memory before, after) for one message tracked by a real daemon."""
    server = (FakeImapServer() if protocol == "imap" else FakePop3Server()).start()
    work = Path(tempfile.mkdtemp(prefix="abook-mem-"))
    try:
        extra = {"delete_after_tracking": True} if protocol == "pop3" else {}
        cfg, store = _init(work, fake_mailbox("big", server.port, kind=protocol, interval=0.5, **extra))
        seed_org(store)
        daemon = _serve(cfg, work / "run.log")
        try:
            wait_until(lambda: polled(store, "big"), timeout=60, what="a poll of the empty mailbox")
            before = memory(daemon.pid)
            raw = large_message(size, kind)
            server.deliver(raw)
            wait_until(lambda: tracked(store, "big")[2] == 1, timeout=300, what="the message tracked and marked")
            after = memory(daemon.pid)
        finally:
            _stop(daemon)
        store.dispose()
        return len(raw), before, after
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=50.0, help="message size in MB (10^6 bytes)")
    p.add_argument("--kind", choices=["attachments", "text"], default="attachments")
    p.add_argument("--protocol", choices=["imap", "pop3"], default="imap")
    a = p.parse_args()
    started = time.monotonic()
    size, before, after = measure(int(a.mb * 1_000_000), a.kind, a.protocol)
    growth = after["VmHWM"] - before["VmHWM"]
    print(f"{a.protocol} {a.kind}: message {size / 1e6:.1f} MB; daemon VmHWM {before['VmHWM']:.0f} -> "
          f"{after['VmHWM']:.0f} MiB, VmRSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MiB; peak growth "
          f"{growth * 1048576 / size:.2f}x the message ({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
