"""Progress on stderr for every step that can take more than a few seconds.

* :func:`bars` says whether tqdm bars may be drawn: only when progress is wanted, ``-q`` was
  not given, and stderr is a terminal (so logs never collect ``\\r`` / ``ESC[A`` codes);
* :func:`activity` is for one long step with no natural count (a Verilator build, a yosys
  run, emitting a big layer): on a terminal a one-line spinner with the elapsed time and the
  step's latest note; elsewhere one plain line when the step starts and one when it ends;
* :func:`run_streaming` runs a subprocess under an activity, showing its latest output line
  and keeping the tail of its output for error messages.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """``-q``: no progress output at all (results are still printed)."""
    global _QUIET
    _QUIET = bool(quiet)


def wanted(progress: bool = True) -> bool:
    """Progress output of any kind (bars or plain lines)."""
    return bool(progress) and not _QUIET


def bars(progress: bool = True) -> bool:
    """tqdm bars and spinners: wanted, and stderr is a terminal."""
    return wanted(progress) and sys.stderr.isatty()


class Activity:
    """A running step; :meth:`note` sets the text shown after the elapsed time."""

    def __init__(self, desc: str, live: bool, plain: bool) -> None:
        self.desc, self.live, self.plain = desc, live, plain
        self.t0 = time.perf_counter()
        self.text = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def note(self, text: str) -> None:
        self.text = " ".join(text.split())[:60]

    def _line(self) -> str:
        return f"{self.desc} [{self.elapsed:5.0f} s] {self.text}"

    def _spin(self) -> None:
        while not self._stop.wait(0.5):
            sys.stderr.write("\r\x1b[K" + self._line())
            sys.stderr.flush()

    def start(self) -> None:
        if self.live:
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        elif self.plain:
            print(f"{self.desc} ...", file=sys.stderr, flush=True)

    def stop(self, outcome: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r\x1b[K")
        if self.live or self.plain:
            print(f"{self.desc}: {outcome} after {self.elapsed:.1f} s", file=sys.stderr,
                  flush=True)


@contextmanager
def activity(desc: str, progress: bool = True) -> Iterator[Activity]:
    """Show ``desc`` with the elapsed time while the block runs (see the module docstring)."""
    act = Activity(desc, live=bars(progress), plain=wanted(progress) and not bars(progress))
    act.start()
    outcome = "failed"
    try:
        yield act
        outcome = "done"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        act.stop(outcome)


def run_streaming(cmd: Sequence[str], desc: str, progress: bool = True, cwd=None,
                  keep: int = 200, note: Callable[[str], str | None] | None = None,
                  first_note: str = "") -> tuple[int, str]:
    """Run ``cmd`` (stdout and stderr merged) under :func:`activity`; ``note(line)`` (default:
    the line itself) gives the text shown for each output line (None: keep the last);
    ``first_note`` is shown until then.
    Returns (exit code, the last ``keep`` lines of output)."""
    tail: deque[str] = deque(maxlen=keep)
    with activity(desc, progress) as act:
        act.note(first_note)
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip("\n"))
                text = (note or str.strip)(line)
                if text:
                    act.note(text)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return rc, "\n".join(tail)
