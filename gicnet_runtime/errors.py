"""The project's own error type and its one-line message.

Every failure caused by the user's input (a file, an option, a model) is raised as
:class:`GicnetError` with a one-line message; the CLI prints that line and exits
non-zero.  Anything else escaping is a bug in gicnet.
"""


class GicnetError(Exception):
    """A user-facing error with a one-line message."""


class InputError(GicnetError, ValueError):
    """Bad input data: malformed file, wrong shape, non-finite value, impossible time."""


class ModelError(GicnetError):
    """A model file that is missing, corrupted, foreign or of an unsupported version."""


class Interrupted(GicnetError):
    """A run stopped by SIGINT or SIGTERM after saving what it had done; the message says
    how to continue.  The CLI exits with status 130."""


class Diverged(GicnetError):
    """Training whose loss became non-finite: the message names where and which terms, and
    what to change; the last good checkpoints are kept."""


class GeometryError(InputError):
    """A geometry the internal-coordinate definition cannot represent (e.g. collinear
    references)."""


def one_line(err: BaseException | str) -> str:
    """An exception's (or a text's) message on one line, whitespace collapsed; the
    exception's type name when it has no message."""
    text = " ".join(str(err).split())
    if text or isinstance(err, str):
        return text
    return type(err).__name__
