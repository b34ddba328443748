"""The allocator settings every daemon process applies (``abook.process.tune_malloc``).

Each case runs in a fresh interpreter: mallopt settings are process-wide and cannot be undone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A burst, as a paged download or an argon2 hash makes one: one large block freed, then many blocks of a
# few MiB, then a live block above them (1 MiB: too big for any free fragment below), then the blocks are freed. Prints how much of the
# burst's memory is still resident (RssAnon growth, in MiB).
BURST = textwrap.dedent(
    """
    import ctypes, sys
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def anon_kib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    if sys.argv[1] == "tuned":
        from abook.process import tune_malloc
        assert tune_malloc()
    before = anon_kib()
    big = libc.malloc(8 << 20); ctypes.memset(big, 1, 8 << 20); libc.free(big)
    blocks = [libc.malloc(2 << 20) for _ in range(24)]
    for b in blocks:
        ctypes.memset(b, 1, 2 << 20)
    live = libc.malloc(1 << 20); ctypes.memset(live, 1, 1 << 20)
    for b in blocks:
        libc.free(b)
    print((anon_kib() - before) // 1024)
    """
)


def _retained(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", BURST, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_burst_of_large_blocks_is_given_back() -> None:
    # untuned glibc keeps the 48 MiB the burst used (its threshold grew to 8 MiB, so the 2 MiB blocks
    # came from the heap, below a live block); tuned, they were mapped and unmapped
    assert _retained("default") >= 40
    assert _retained("tuned") < 8
