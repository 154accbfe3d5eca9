"""``precompute_crc``: stored entries of unknown CRC without data descriptors.

Java's ``ZipInputStream`` refuses a STORED entry followed by a data descriptor; reading
the data once before its header lets every entry carry its CRC up front instead.
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

import pytest
import webtest
from readers import check_all, check_java

from zipwsgi import ZipMiddleware, ZipStream


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    rng = random.Random(7)
    for name, size in [("a.bin", 0), ("b.txt", 11), ("sub/c.bin", 70_000), ("sub/d.bin", 3000)]:
        (root / name).write_bytes(rng.randbytes(size))
    return root


def build(tree: Path, precompute: bool) -> ZipStream:
    zs = ZipStream(precompute_crc=precompute, chunk_size=4096)
    zs.add_path(tree, "tree")
    zs.add(lambda: b"made on demand", "made.txt", size=14)
    return zs


def expected(tree: Path) -> dict:
    files = {f"tree/{p.relative_to(tree).as_posix()}": p.read_bytes()
             for p in tree.rglob("*") if p.is_file()}
    dirs = {f"tree/{p.relative_to(tree).as_posix()}/": None for p in tree.rglob("*") if p.is_dir()}
    return {"tree/": None, **dirs, **files, "made.txt": b"made on demand"}


def test_no_entry_has_a_descriptor_and_every_reader_opens_it(tree, tmp_path):
    zs = build(tree, precompute=True)
    body = b"".join(zs)
    assert len(body) == zs.size
    path = tmp_path / "pre.zip"
    path.write_bytes(body)
    assert all(not entry.flag_bits & 0x08 for entry in zipfile.ZipFile(path).infolist())
    check_all(path, expected(tree))
    check_java(path, expected(tree))


def test_without_it_java_refuses_the_stored_descriptors(tree, tmp_path):
    path = tmp_path / "plain.zip"
    path.write_bytes(b"".join(build(tree, precompute=False)))
    with pytest.raises(AssertionError):
        check_java(path, expected(tree))


def test_ranges_agree_with_the_whole(tree):
    body = b"".join(build(tree, precompute=True))
    rng = random.Random(3)
    for _ in range(150):
        start = rng.randrange(len(body))
        stop = rng.randrange(start, len(body) + 1)
        # a fresh stream each time: the CRCs must be found from the range alone
        part = build(tree, precompute=True).app_iter_range(start, stop)
        assert b"".join(part) == body[start:stop]


def test_a_file_changed_after_its_crc_was_read_still_fails_loudly(tree):
    zs = ZipStream(precompute_crc=True)
    zs.add_path(tree / "sub" / "c.bin", "c.bin")
    os.truncate(tree / "sub" / "c.bin", 10)
    with pytest.raises(OSError):
        b"".join(zs)


def test_middleware_option_makes_dash_crc_manifests_java_readable(tree, tmp_path):
    manifest = b"- 11 /files/b.txt b.txt\n- 70000 /files/sub/c.bin c.bin\n"

    def app(environ, start_response):
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [manifest]

    body = webtest.TestApp(
        ZipMiddleware(app, roots={"/files/": str(tree)}, precompute_crc=True)
    ).get("/x").body
    path = tmp_path / "mw.zip"
    path.write_bytes(body)
    check_java(path, {"b.txt": (tree / "b.txt").read_bytes(),
                      "c.bin": (tree / "sub" / "c.bin").read_bytes()})
