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
