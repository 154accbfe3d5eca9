"""Shared fixtures for the engine tests (readers live in ``readers.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from webtest import TestApp


def drain(iterable: Iterable[bytes]) -> bytes:
    """Every chunk of one pass, joined."""
    return b"".join(iterable)


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


class ClosingBody:
    """A WSGI body that records what happened to it: how many chunks were taken, how often
    it was closed; ``on_first`` runs when the first chunk is asked for (an app calling
    ``start_response`` late), ``fail_at`` raises ``RuntimeError`` instead of that chunk."""

    def __init__(
        self,
        chunks: Iterable[object],
        *,
        on_first: Optional[Callable[[], object]] = None,
        fail_at: Optional[int] = None,
    ) -> None:
        self.chunks = list(chunks)
        self.on_first = on_first
        self.fail_at = fail_at
        self.taken = 0
        self.closed = 0

    def __iter__(self) -> ClosingBody:
        return self

    def __next__(self) -> object:
        if self.on_first is not None:
            on_first, self.on_first = self.on_first, None
            on_first()
        if self.taken == self.fail_at:
            raise RuntimeError("the body failed")
        if self.taken >= len(self.chunks):
            raise StopIteration
        self.taken += 1
        return self.chunks[self.taken - 1]

    def close(self) -> None:
        self.closed += 1


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """The shared folder of ``share_tree.make_share`` (modules may define their own)."""
    from share_tree import make_share

    return make_share(tmp_path)


@pytest.fixture()
def app(root: Path) -> TestApp:
    """The standalone app serving ``root``, driven in-process by WebTest."""
    from webtest import TestApp

    from zipwsgi import ZipApp

    return TestApp(ZipApp(root))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """The system Chromium, one per module (skipped when missing, see ``browser.py``)."""
    from browser import launch_chromium

    with launch_chromium() as browser:
        yield browser


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """``in/photos``: a small folder with nesting and non-ASCII names, plus a loose file
    ``in/notes.txt`` beside it (what the command-line tests pack)."""
    root = tmp_path / "in" / "photos"
    (root / "café").mkdir(parents=True)
    (root / "2024" / "may").mkdir(parents=True)
    (root / "Отчёт.txt").write_text("отчёт\n", "utf-8")
    (root / "café" / "menu.txt").write_text("espresso\n" * 100, "utf-8")
    (root / "2024" / "may" / "a.bin").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "in" / "notes.txt").write_text("notes\n", "utf-8")
    return root
