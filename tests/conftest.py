"""Shared fixtures for the engine tests (readers live in ``readers.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import pytest


def write_chunks(chunks: Iterable[bytes], path: Path) -> Path:
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
    return path


@pytest.fixture
def save(tmp_path: Path) -> Callable[..., Path]:
    """``save(zs, "name.zip")``: stream one pass of ``zs`` into a file under tmp_path."""

    def save(zs: Iterable[bytes], name: str = "archive.zip") -> Path:
        return write_chunks(zs, tmp_path / name)

    return save


@pytest.fixture
def open_fds() -> Callable[[], int]:
    """How many file descriptors this process holds right now (Linux /proc)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    return lambda: len(os.listdir("/proc/self/fd"))


#: The zip64 limit while the ``low_limit`` fixture is active.
LOW_ZIP64_LIMIT = 1000


@pytest.fixture
def low_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lower the zip64 limit to ``LOW_ZIP64_LIMIT`` bytes: readers decide zip64 from the
    0xFFFFFFFF placeholders, not from the values, so small archives exercise zip64."""
    from zipwsgi.formats.zip import records as zf

    monkeypatch.setattr(zf, "ZIP64_LIMIT", LOW_ZIP64_LIMIT)
    return LOW_ZIP64_LIMIT
