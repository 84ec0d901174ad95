"""What the entry points share: a GlossError ends the program with one line on stderr (and in run.log), exit 2; a
run stopped by SIGTERM exits 143 (128 + 15), not 0."""
from __future__ import annotations

import functools
import logging
import signal
import sys
from typing import Callable


def one_line_errors(main: Callable) -> Callable:
    from gloss.errors import RunFolderRefused, user_error

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as e:
            if (err := user_error(e)) is None:
                raise
            refused = isinstance(err, RunFolderRefused)  # that folder's run.log is another run's
            for handler in logging.getLogger().handlers:  # into run.log; the console gets the one line below
                if isinstance(handler, logging.FileHandler) and not refused:
                    handler.emit(logging.LogRecord("gloss", logging.ERROR, __file__, 0, "%s", (err,), None))
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except SystemExit as e:  # Lightning stops gracefully on SIGTERM with a SystemExit that carries no code (0)
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            if not isinstance(e, SIGTERMException):
                raise
            print("error: stopped by SIGTERM before the results (see run.log)", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)

    return wrapped
