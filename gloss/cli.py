"""What the entry points share: a GlossError, or a mistake Hydra finds in the command line or the config before the
run starts, ends the program with one line on stderr (and in run.log), exit 2; a run stopped by SIGTERM says so on
stderr and in run.log, releases its run folder, leaves no temp file, and exits 143 (128 + 15); Ctrl-C the same,
exit 130."""
from __future__ import annotations

import contextlib
import difflib
import errno
import functools
import itertools
import logging
import os
import re
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Iterator


class Terminated(SystemExit):
    """SIGTERM outside Lightning's fit: raised where the program is, so that it unwinds like an error (run.lock
    released, temp files removed, run.log noted) and exits 143."""


def raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(128 + signal.SIGTERM)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated while the run lasts (main thread only: Python runs handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_left_to_lightning() -> Iterator[None]:
    """Around trainer.fit: Lightning's handler stops at a step boundary and saves last.ckpt (the bit-identical resume);
    it would also call ours, whose exception would cut the step, so ours is off until fit returns."""
    ours = signal.getsignal(signal.SIGTERM) is raise_terminated
    if not ours or threading.current_thread() is not threading.main_thread():  # signal.signal: main thread only
        yield
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, raise_terminated)


def to_run_log(message: str) -> None:
    """`message` into run.log (the root logger's file handlers), not on the console."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logging.LogRecord("gloss", logging.ERROR, __file__, 0, "%s", (message,), None))


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def write_error(exc: BaseException) -> str | None:
    """One line for an OSError the machine, not gloss, is behind (full disk, quota, read-only or forbidden path)."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    return f"{exc.strerror}: {exc.filename}" if exc.filename else f"{exc.strerror} (a write failed)"


def one_line_errors(main: Callable) -> Callable:
    from gloss.errors import RunFolderRefused, user_error

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            with sigterm_raises():
                return main(*args, **kwargs)
        except Exception as e:
            if (err := user_error(e) or write_error(e)) is None:
                raise
            if not isinstance(err, RunFolderRefused):  # that folder's run.log is another run's
                to_run_log(str(err))
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:  # unwound like an error: run.lock released, temp files removed
            to_run_log("interrupted (Ctrl-C)")
            print("error: interrupted (Ctrl-C)", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        except SystemExit as e:  # Lightning stops gracefully on SIGTERM with a SystemExit that carries no code (0)
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            if not isinstance(e, (SIGTERMException, Terminated)):
                raise
            to_run_log("stopped by SIGTERM")
            print("error: stopped by SIGTERM (see run.log)", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)

    return wrapped


def hydra_entry(main: Callable[[], Any]) -> Any:
    """Call a `@hydra.main` function so that a mistake Hydra or OmegaConf finds while composing the config (unknown
    config choice, misspelt key, unparsable override) is one line and exit 2 instead of Hydra's report and exit 1.
    Hydra prints and exits inside `hydra.main` unless HYDRA_FULL_ERROR is set, so it is set for the call; a user who
    sets it gets everything raised as it is. Errors raised inside the run (past `one_line_errors`) pass unchanged."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        return main()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return main()
    except Exception as e:
        if (line := composition_error(e) or run_folder_error(e)) is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def ran_inside(exc: BaseException) -> bool:
    """Whether `exc` was raised inside the run (below one_line_errors), not by Hydra before it."""
    run_code = one_line_errors(print).__code__  # the code of every one_line_errors wrapper
    return any(frame.f_code is run_code for frame, _ in traceback.walk_tb(exc.__traceback__))


def composition_error(exc: BaseException) -> str | None:
    """One line for a Hydra / OmegaConf error raised before the run began, or None (a bug, or raised by the run)."""
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf import DictConfig
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(exc, (HydraException, OmegaConfBaseException)) or ran_inside(exc):
        return None
    if isinstance(exc, OverrideParseException):
        return (f"{exc.override}: not a valid override ({exc.message.splitlines()[0]}; see "
                "https://hydra.cc/docs/advanced/override_grammar/basic)")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    head = lines[0]
    if "Available options in" in str(exc):  # an unknown config choice: name the choices
        i = next(i for i, line in enumerate(lines) if line.startswith("Available options in"))
        names = [line for line in itertools.takewhile(lambda line: not line.startswith("Config search path"),
                                                       lines[i + 1:])]
        return f"{head} ({lines[i].rstrip(':').lower()}: {', '.join(names)})"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        head += f" {str(cause).splitlines()[0]}"
        parent = getattr(cause, "parent_node", None)
        if isinstance(parent, DictConfig) and isinstance(getattr(cause, "key", None), str):
            close = difflib.get_close_matches(cause.key, [str(k) for k in parent.keys()], n=3)
            hint = "a new key needs a leading +"
            head += f" (did you mean {' or '.join(close)}? {hint})" if close else f" ({hint})"
    return re.sub(r"\s+", " ", head)


def run_folder_error(exc: BaseException) -> str | None:
    """One line for an OSError Hydra raised making the run folder (or its .hydra/ files) before the run began."""
    if not isinstance(exc, OSError) or ran_inside(exc):
        return None
    return (f"cannot write the run folder: {exc.filename}: {exc.strerror} (set hydra.run.dir, or hydra.sweep.dir for "
            "-m, to a writable folder)")
