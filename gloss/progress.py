"""Progress lines for long ranking loops, written to the log rather than only to a terminal bar.

Hydra's run.log (and any non-TTY stdout) never sees a tqdm bar, so a 9-minute ranking of 22k users looked hung.
`Progress` logs "<desc>: <done>/<total> users (<rate> users/s, ETA m:ss)" on `gloss.progress` at INFO at most every
`interval_s` seconds, plus one closing line when the loop outlasted the interval; short loops stay silent.
On a terminal it also draws a tqdm bar.
"""
from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Callable

log = logging.getLogger("gloss.progress")

DEFAULT_INTERVAL_S: float = 30.0  # read at construction, so tests and scripts can change it module-wide


def format_duration(seconds: float) -> str:
    """m:ss (h:mm:ss from an hour on): compact enough for a log line, unambiguous for long runs."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts work done in a loop and reports it to the log at a bounded rate (see the module docstring).

    `interval_s=None` uses `DEFAULT_INTERVAL_S`; `clock` is injectable so tests need not sleep; `bar=None` draws a
    tqdm bar only when stderr is a TTY (never in a log file).
    """

    def __init__(self, total: int, desc: str, interval_s: float | None = None, unit: str = "users",
                 clock: Callable[[], float] = time.monotonic, bar: bool | None = None) -> None:
        self.total, self.desc, self.unit, self.clock = int(total), desc, unit, clock
        self.interval_s = DEFAULT_INTERVAL_S if interval_s is None else float(interval_s)
        self.done = 0
        self.start = self.last_log = clock()
        self.closed = False
        self._bar = None
        if bar if bar is not None else _stderr_is_tty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, mininterval=1.0)

    def update(self, n: int) -> None:
        """Add `n` finished units; logs a line when `interval_s` has passed since the last one (and work remains)."""
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(n)
        now = self.clock()
        if self.done < self.total and now - self.last_log >= self.interval_s:
            self.last_log = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
            log.info("%s: %d/%d %s (%.1f %s/s, ETA %s)", self.desc, self.done, self.total, self.unit, rate,
                     self.unit, eta)

    def close(self) -> None:
        """Finish: one closing line with the total time if the loop took longer than `interval_s` (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
        elapsed = self.clock() - self.start
        if elapsed > self.interval_s:
            rate = self.done / elapsed if elapsed > 0 else 0.0
            log.info("%s: %d/%d %s (%.1f %s/s, took %s)", self.desc, self.done, self.total, self.unit, rate,
                     self.unit, format_duration(elapsed))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False
