"""``zipwsgi.compat.zipstream``: python-zipstream's (and zipstream-new's) ``ZipFile`` on
our engine. Each example of python-zipstream's README (and its ``example.py``) runs here
with only the import changed, and the archives are opened by the real readers.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import webtest
from readers import check_all, check_unzip, check_zipfile

from zipwsgi.compat.zipstream import ZIP_DEFLATED, ZIP_STORED, ZipFile, zipfile_arcname
from zipwsgi.errors import ArchiveNameError, DuplicateNameError


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``path/to/files/`` (two files, one folder) and
    ``LICENSE``, as the README's examples assume; the tests run inside it."""
    root = tmp_path / "cwd"
    (root / "path" / "to" / "files" / "sub").mkdir(parents=True)
    (root / "path" / "to" / "files" / "a.txt").write_bytes(b"alpha\n" * 100)
    (root / "path" / "to" / "files" / "sub" / "b.bin").write_bytes(os.urandom(5000))
    (root / "LICENSE").write_text("MIT License\n" * 20)
    (root / "zipstream").mkdir()
    (root / "zipstream" / "__init__.py").write_text("# the package\n")
    (root / "zipstream" / "compat.py").write_text("# compat\n")
    monkeypatch.chdir(root)
    return root


def iterable():
    for _ in range(10):
        yield b"this is a byte string\x01\n"


ITERABLE = b"this is a byte string\x01\n" * 10


def read(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


# --- python-zipstream's README, one test per example -------------------------------------------


def test_readme_write_a_path(files):
    z = ZipFile()
    z.write("path/to/files")
    z.write("path/to/files/a.txt")
    with open("zipfile.zip", "wb") as f:
        for data in z:
            f.write(data)
    # As zipfile: a folder given to write() is a directory entry, not walked.
    expected = {"path/to/files/": None, "path/to/files/a.txt": b"alpha\n" * 100}
    # Stored files of unknown CRC have data descriptors, which Java's ZipInputStream
    # refuses (as with python-zipstream); ZipFile(precompute_crc=True) avoids them.
    check_all("zipfile.zip", expected, java=False)
    z = ZipFile(precompute_crc=True)
    z.write("path/to/files")
    z.write("path/to/files/a.txt")
    with open("java.zip", "wb") as f:
        f.writelines(z)
    check_all("java.zip", expected)


def test_readme_write_iter(files):
    z = ZipFile()
    z.write_iter("my_archive_iter", iterable())
    with open("zipfile.zip", "wb") as f:
        for data in z:
            f.write(data)
    # Entries of unknown size: readers that need sizes up front are left out.
    check_all("zipfile.zip", {"my_archive_iter": ITERABLE}, java=False, streaming=False)


def test_readme_both_combined(files):
    z = ZipFile()
    z.write("path/to/files/a.txt", "my_archive_files")
    z.write_iter("my_archive_iter", iterable())
    with open("zipfile.zip", "wb") as f:
        for data in z:
            f.write(data)
    assert read(Path("zipfile.zip")) == {
        "my_archive_files": b"alpha\n" * 100,
        "my_archive_iter": ITERABLE,
    }
    check_unzip("zipfile.zip")


def test_readme_flask_examples(files):
    from flask import Flask, Response

    app = Flask(__name__)

    @app.route("/package.zip", methods=["GET"], endpoint="zipball")
    def zipball():
        def generator():
            z = ZipFile(mode="w", compression=ZIP_DEFLATED)
            z.write(str(files / "LICENSE"))
            yield from z

        response = Response(generator(), mimetype="application/zip")
        response.headers["Content-Disposition"] = "attachment; filename={}".format("files.zip")
        return response

    @app.route("/package2.zip", methods=["GET"], endpoint="zipball2")
    def zipball2():
        z = ZipFile(mode="w", compression=ZIP_DEFLATED)
        z.write(str(files / "LICENSE"))
        response = Response(z, mimetype="application/zip")
        response.headers["Content-Disposition"] = "attachment; filename={}".format("files.zip")
        return response

    client = webtest.TestApp(app)
    name = zipfile_arcname(str(files / "LICENSE"))
    for url in ("/package.zip", "/package2.zip"):
        body = client.get(url).body
        archive = zipfile.ZipFile(io.BytesIO(body))
        assert archive.namelist() == [name] and not name.startswith("/")
        assert archive.read(name) == b"MIT License\n" * 20
        assert archive.getinfo(name).compress_type == zipfile.ZIP_DEFLATED


def test_readme_django_example(files):
    from django.http import StreamingHttpResponse
    from django.test import RequestFactory
    from django_helper import django_app

    def zipball(request):
        z = ZipFile(mode="w", compression=ZIP_DEFLATED)
        z.write(str(files / "LICENSE"))
        response = StreamingHttpResponse(z, content_type="application/zip")
        response["Content-Disposition"] = "attachment; filename={}".format("files.zip")
        return response

    with django_app(__name__):
        response = zipball(RequestFactory().get("/"))
        body = b"".join(response)
        response.close()
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.read(zipfile_arcname(str(files / "LICENSE"))) == b"MIT License\n" * 20


def test_example_py(files):
    """python-zipstream's example.py: ``with`` block, ``arcname=``, an ``os.walk``."""
    with ZipFile(mode="w", compression=ZIP_DEFLATED) as z:
        z.write("LICENSE")
        z.write("LICENSE", arcname="stuff/LICENSE")

        for root, _directories, filenames in os.walk("zipstream"):
            for filename in filenames:
                path = os.path.join(root, filename)
                z.write(path, path)

        with open("test.zip", "wb") as f:
            for chunk in z:
                f.write(chunk)

    with zipfile.ZipFile("test.zip") as archive:
        assert archive.testzip() is None
    license_text = (files / "LICENSE").read_bytes()
    check_all("test.zip", {
        "LICENSE": license_text,
        "stuff/LICENSE": license_text,
        "zipstream/__init__.py": b"# the package\n",
        "zipstream/compat.py": b"# compat\n",
    })


# --- what python-zipstream got wrong, and zipfile's naming rules ------------------------------


@pytest.mark.parametrize("compression", [ZIP_STORED, ZIP_DEFLATED])
def test_directory_entries_are_valid(files, compression, tmp_path):
    """python-zipstream flagged folders deflated with a descriptor: unzip -t failed."""
    z = ZipFile(mode="w", compression=compression)
    z.write("path/to/files/sub")
    z.write("path/to/files/sub/b.bin")
    out = tmp_path / "dirs.zip"
    out.write_bytes(b"".join(z))
    with zipfile.ZipFile(out) as archive:
        folder = archive.getinfo("path/to/files/sub/")
        assert folder.compress_type == zipfile.ZIP_STORED and not folder.flag_bits & 0x08
    check_unzip(out)
    check_zipfile(out, {
        "path/to/files/sub/": None,
        "path/to/files/sub/b.bin": (files / "path/to/files/sub/b.bin").read_bytes(),
    })


@pytest.mark.parametrize(("given", "stored"), [
    ("/home/me/a.txt", "home/me/a.txt"),
    ("//srv//x/./y.txt", "srv/x/y.txt"),
    ("a/b/../c.txt", "a/c.txt"),
    ("relative.txt", "relative.txt"),
])
def test_names_as_zipfile_writes_them(given, stored):
    assert zipfile_arcname(given) == stored
    z = ZipFile()
    z.writestr(given, b"x")
    assert z.namelist() == [stored]
    # zipfile's own rule for write() gives the same name.
    assert zipfile.ZipInfo.from_file(__file__, given).filename == stored


def test_absolute_paths_are_stored_relative(files, tmp_path):
    z = ZipFile()
    z.write(str(files / "path/to/files/a.txt"))
    (name,) = z.namelist()
    assert name == str(files / "path/to/files/a.txt").lstrip("/")
    out = tmp_path / "abs.zip"
    out.write_bytes(b"".join(z))
    check_unzip(out)


def test_parent_escapes_and_duplicates_are_refused():
    z = ZipFile()
    with pytest.raises(ArchiveNameError):
        z.writestr("../evil.txt", b"x")
    z.writestr("a.txt", b"1")
    with pytest.raises(DuplicateNameError):
        z.writestr("/a.txt", b"2")


def test_len_when_the_size_is_known_and_invisible_otherwise(files):
    z = ZipFile()
    z.write("LICENSE")
    z.writestr("s.txt", "text")
    assert len(z) == z.size == len(b"".join(z))
    assert hasattr(z, "__len__") and bool(z)

    z.write_iter("unknown", iterable())
    assert z.size is None and not hasattr(z, "__len__") and bool(z)
    with pytest.raises(TypeError):
        len(z)

    deflated = ZipFile(compression=ZIP_DEFLATED)
    deflated.write("LICENSE")
    assert not hasattr(deflated, "__len__")


def test_constructor_rules():
    assert (ZIP_STORED, ZIP_DEFLATED) == (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
    with pytest.raises(RuntimeError, match='requires mode "w"'):
        ZipFile(mode="r")
    with pytest.raises(ValueError, match="fileobj"):
        ZipFile(io.BytesIO())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ZipFile(compression=zipfile.ZIP_LZMA)
    ZipFile(allowZip64=False)  # accepted: zip64 is used exactly where an entry needs it


def test_writestr_with_zipinfo_and_str(tmp_path):
    z = ZipFile()
    info = zipfile.ZipInfo("dated.txt", date_time=(2020, 5, 17, 12, 30, 44))
    info.compress_type = ZIP_DEFLATED
    info.external_attr = 0o100600 << 16
    z.writestr(info, "déjà vu")
    out = tmp_path / "info.zip"
    out.write_bytes(b"".join(z))
    with zipfile.ZipFile(out) as archive:
        read_back = archive.getinfo("dated.txt")
        assert read_back.date_time == (2020, 5, 17, 12, 30, 44)
        assert read_back.compress_type == ZIP_DEFLATED
        assert read_back.external_attr >> 16 == 0o100600
        assert archive.read("dated.txt") == "déjà vu".encode()


def test_close_ends_writing_but_not_reading(files):
    z = ZipFile()
    z.write("LICENSE")
    z.close()
    with pytest.raises(ValueError, match="already closed"):
        z.write("LICENSE", "again")
    assert zipfile.ZipFile(io.BytesIO(b"".join(z))).namelist() == ["LICENSE"]


def test_comment(files, tmp_path):
    z = ZipFile()
    z.write("LICENSE")
    z.comment = b"made by zipwsgi"
    body = b"".join(z)
    assert len(body) == z.size
    assert zipfile.ZipFile(io.BytesIO(body)).comment == b"made by zipwsgi"


def test_the_middleware_serves_a_compat_zipfile_body_with_length_and_range() -> None:
    """A python-zipstream view ported by its import line, behind ZipMiddleware, gets an
    exact length and Range like a ZipStream body."""
    from zipwsgi import ZipMiddleware

    def view(environ: dict, start_response) -> ZipFile:
        archive = ZipFile(mode="w")
        archive.writestr("a.txt", b"hello compat\n")
        start_response("200 OK", [("Content-Type", "application/zip")])
        return archive

    app = webtest.TestApp(ZipMiddleware(view))
    whole = app.get("/")
    assert whole.headers["Content-Length"] == str(len(whole.body))
    assert zipfile.ZipFile(io.BytesIO(whole.body)).read("a.txt") == b"hello compat\n"
    part = app.get("/", headers={"Range": "bytes=5-20"}, status=206)
    assert part.body == whole.body[5:21]
