"""A progress bar on a terminal's stderr; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``advance(n)`` moves the bar; it redraws at most ten times a second. ``phase`` starts a new bar."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, force: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.width = width
        self.label = ""
        self.total = 0
        self.done = 0
        self.unit = ""
        self._drawn = 0.0

    def phase(self, label: str, total: int, unit: str = "") -> None:
        self.finish()
        self.label, self.total, self.done, self.unit = label, total, 0, unit
        self._draw()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._draw(now)

    def _draw(self, now: float | None = None) -> None:
        if not self.enabled or not self.label:
            return
        self._drawn = now if now is not None else time.monotonic()
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        count = f"{self.done}/{self.total}{self.unit}" if self.unit != " bytes" else f"{self.done >> 20}/{self.total >> 20} MiB"
        self.stream.write(f"\r{self.label:<10} [{bar}] {frac * 100:5.1f}% {count}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.label:
            self.done = max(self.done, self.total)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        self.label = ""
