"""Run pytest in a process where isal and zlib-ng cannot be imported.

``pip install zipwsgi`` brings isal and zlib-ng only on platforms with wheels for them;
everywhere else the stdlib ``zlib`` does the work. This runner proves that install works:
it hides both libraries before anything imports zipwsgi, checks the engine picked zlib,
then hands its arguments to pytest::

    python tests/without_speedups.py tests/test_engine_shapes.py -m "not slow"

``make test-without-speedups`` (run by CI after ``make test``) picks the engine, deflate
and middleware tests.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Optional, Sequence

HIDDEN = ("isal", "zlib_ng")


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Optional[Sequence[str]] = None,
                  target: object = None) -> None:
        if name.partition(".")[0] in HIDDEN:
            raise ImportError(f"{name} is hidden: this run tests the install without it")
        return None


def main(argv: list[str]) -> int:
    for name in list(sys.modules):
        if name.partition(".")[0] in HIDDEN:
            raise SystemExit(f"{name} was imported before the runner could hide it")
    sys.meta_path.insert(0, _Hide())

    from zipwsgi.engine import compression

    assert compression.CRC32_IMPLEMENTATION == "zlib", compression.CRC32_IMPLEMENTATION
    assert compression.deflate_implementation(6) == "zlib level 6"
    print("without speed-ups: CRC-32 and deflate by the stdlib zlib", flush=True)

    import pytest

    return int(pytest.main(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
