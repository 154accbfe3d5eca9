"""Helpers for the standalone-app tests: a served tree with traps, and zip checkers.

``make_share`` builds ``<tmp>/share`` (the root) beside ``<tmp>/outside`` (a secret the
app must never reveal), with hidden files and symlinks pointing out of the root. Every
archive a test receives goes through ``check_zip``: Python's ``zipfile`` and ``unzip -t``
must both accept it.

(Not a test module: tests import it as ``share_tree``, as they import ``browser``.)
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

#: Content of files the app must never serve, whatever the request.
SECRET = b"TOP-SECRET-9f1c2e outside the root"
HIDDEN_SECRET = b"HIDDEN-SECRET-47ab hidden inside the root"

READERS = {
    "unzip": ["unzip", "-t", "-qq"],
    "7z": ["7z", "t", "-bso0", "-bsp0"],
    "bsdtar": ["bsdtar", "-tf"],
}


def make_share(base: Path) -> Path:
    """Build the served tree under ``base`` and return its root.

    share/
      README.txt              "hello\\n"
      café/menu.txt           non-ASCII folder name
      docs/a.txt, docs/b/c.txt
      docs/.env               hidden (secret)
      .private/key.txt        hidden folder (secret)
      empty/
      to-docs -> docs         symlink inside the root: allowed
      escape -> ../outside    symlink to a folder outside: never followed
      leak.txt -> ../outside/secret.txt
      docs/deep-escape -> ../../outside
      abs -> <base>/outside   absolute symlink out
      peek -> .private        visible name, hidden target
    outside/secret.txt        SECRET
    """
    root = base / "share"
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root.mkdir()
    (root / "README.txt").write_bytes(b"hello\n")
    (root / "café").mkdir()
    (root / "café" / "menu.txt").write_bytes(b"coffee 2.50\ntea 2.00\n")
    docs = root / "docs"
    (docs / "b").mkdir(parents=True)
    (docs / "a.txt").write_bytes(b"A" * 1000)
    (docs / "b" / "c.txt").write_bytes(b"C" * 300)
    (docs / ".env").write_bytes(HIDDEN_SECRET)
    (root / ".private").mkdir()
    (root / ".private" / "key.txt").write_bytes(HIDDEN_SECRET)
    (root / "empty").mkdir()
    os.symlink("docs", root / "to-docs")
    os.symlink("../outside", root / "escape")
    os.symlink("../outside/secret.txt", root / "leak.txt")
    os.symlink("../../outside", docs / "deep-escape")
    os.symlink(str(outside), root / "abs")
    os.symlink(".private", root / "peek")
    return root


def open_zip(body: bytes) -> zipfile.ZipFile:
    """Open ``body`` with Python's zipfile, after checking every CRC."""
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    return archive


def run_reader(reader: str, path: Path) -> None:
    """Run one external reader's integrity test on ``path``. A reader that is not
    installed skips the test, or fails it where ``ZIPWSGI_REQUIRE_READERS=1`` (CI)."""
    command = READERS[reader]
    if shutil.which(command[0]) is None:
        if os.environ.get("ZIPWSGI_REQUIRE_READERS") == "1":
            pytest.fail(f"{command[0]} is not installed (ZIPWSGI_REQUIRE_READERS=1)")
        pytest.skip(f"{command[0]} is not installed")
    result = subprocess.run([*command, str(path)], capture_output=True, timeout=60)
    assert result.returncode == 0, (reader, result.stdout, result.stderr)


def check_zip(body: bytes, readers: tuple[str, ...] = ("unzip",)) -> zipfile.ZipFile:
    """``open_zip``, plus ``unzip -t`` (and any other ``readers``) on the same bytes."""
    archive = open_zip(body)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive.zip"
        path.write_bytes(body)
        for reader in readers:
            run_reader(reader, path)
    return archive


def file_names(archive: zipfile.ZipFile) -> list[str]:
    """The archive's file names (folders left out), sorted."""
    return sorted(name for name in archive.namelist() if not name.endswith("/"))
