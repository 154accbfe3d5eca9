"""zipwsgi.allocator: glibc thresholds set once, never over the operator's own settings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from zipwsgi.allocator import tune_allocator; print(tune_allocator(), tune_allocator())"


def run(**env: str) -> str:
    full = {k: v for k, v in os.environ.items()
            if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES",
                         "ZIPWSGI_TUNE_MALLOC")}
    full.update(env)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tunes_glibc_once() -> None:
    assert run() == "True True"


@pytest.mark.parametrize("env", [{"MALLOC_MMAP_THRESHOLD_": "65536"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
                                 {"ZIPWSGI_TUNE_MALLOC": "0"}])
def test_leaves_an_operators_choice_alone(env: dict[str, str]) -> None:
    assert run(**env) == "False False"


def test_the_middleware_asks_for_it() -> None:
    from zipwsgi import ZipMiddleware, allocator

    ZipMiddleware(lambda environ, start_response: [])
    assert allocator._result is not None
