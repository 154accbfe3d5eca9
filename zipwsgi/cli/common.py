"""What every ``zipwsgi`` command shares: exit codes and the error that carries one."""

from __future__ import annotations

import sys

__all__ = ["CommandError", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "PROG"]

PROG = "zipwsgi"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure to report as ``zipwsgi: <message>`` with an exit code, no traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
