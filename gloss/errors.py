"""User-facing errors: run.py prints these as one line, without a traceback."""


class GlossError(Exception):
    """A problem the user can fix (bad input file, missing data or weights, bad config)."""


class RunFolderRefused(GlossError):
    """A run folder that is not this run's to write (finished, unfinished, or held by another run): reported on
    stderr only, so that the folder, its run.log included, is left as it was."""


class DataFormatError(GlossError):
    """A malformed line in an input file; the message names the file and the line number."""

    def __init__(self, path: str, line_no: int, reason: str):
        super().__init__(f"{path}:{line_no}: {reason}")
        self.path, self.line_no, self.reason = path, line_no, reason


def user_error(exc: BaseException) -> GlossError | None:
    """The GlossError behind `exc`, if any (Hydra's instantiate wraps errors raised in constructors)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, GlossError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
