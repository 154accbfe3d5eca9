"""Coming over from python-zipstream, zipstream-new and zipstream-ng (issue 17).

- The issue's Django view, with only its import line changed, served by waitress and
  downloaded with curl, then opened by every real reader; the same view answering with
  ``zipwsgi.django.archive_response`` (exact length, Range, ``curl -C -`` resume), and a
  Flask view with ``zipwsgi.flask.send_archive`` likewise.
- zipstream-ng's README examples, ported; its names (``from_path``, ``info_list``,
  ``comment``, zipfile's constants, ``add_path(folder, "")``, ``recursive=False``).
- The literal port ``for p in root.glob("**/*"): zs.add_path(p)`` refused, naming both.
- django-zip-stream's unencoded locations: the log says "percent-encode locations".
- Packaging: the data folders are packages, so setuptools has nothing to warn about.
"""

from __future__ import annotations

import configparser
import datetime
import io
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import webtest
from django.http import StreamingHttpResponse
from django_helper import django_app
from readers import check_all, check_unzip
from servers import ROOT, thread_server

from zipwsgi import ZipMiddleware, ZipStream
from zipwsgi.compat.zipstream import ZIP_DEFLATED, ZipFile, zipfile_arcname
from zipwsgi.errors import ArchiveNameError, NestedPathError

# --- the issue's view, only its import changed ------------------------------------------------


def some_streaming_zipfile_view(request):
    zip_stream = ZipFile(mode='w', compression=ZIP_DEFLATED)
    for file_path in Path.home().glob('**/*'):
        zip_stream.write(str(file_path))
    response = StreamingHttpResponse(zip_stream, content_type="application/zip")
    response['Content-Disposition'] = 'attachment; filename="home.zip"'
    return response


def the_same_view_with_archive_response(request):
    from zipwsgi.django import archive_response

    zip_stream = ZipFile(mode='w')  # stored: the length is known before the first byte
    for file_path in Path.home().glob('**/*'):
        zip_stream.write(str(file_path))
    return archive_response(request, zip_stream, "home.zip")


def _urlpatterns() -> list:
    from django.urls import path

    return [
        path("home.zip", some_streaming_zipfile_view),
        path("sized/home.zip", the_same_view_with_archive_response),
    ]


urlpatterns: list = []


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder (nested, non-ASCII, empty folder, a file over one chunk) as $HOME."""
    root = tmp_path / "home" / "me"
    (root / "Documents" / "Отчёты").mkdir(parents=True)
    (root / "Documents" / "Отчёты" / "2024 итоги.txt").write_text("итоги\n" * 400, "utf-8")
    (root / "Documents" / "notes.md").write_bytes(b"# notes\n" * 50)
    (root / "Pictures").mkdir()
    (root / "Pictures" / "big.bin").write_bytes(os.urandom(700_000))
    (root / "empty").mkdir()
    (root / "readme.txt").write_bytes(b"hello\n")
    monkeypatch.setenv("HOME", str(root))
    return root


def expected_of(home: Path) -> dict[str, bytes | None]:
    """What ``write(str(p))`` for every ``p`` of the glob gives: zipfile's names."""
    out: dict[str, bytes | None] = {}
    for path in home.glob("**/*"):
        name = zipfile_arcname(str(path))
        if path.is_dir():
            out[name + "/"] = None
        else:
            out[name] = path.read_bytes()
    return out


def curl(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def headers_of(path: Path) -> dict[str, str]:
    """The last response's headers from a ``curl -D`` dump, by lower-case name."""
    blocks = path.read_bytes().decode("latin-1").strip().split("\r\n\r\n")
    lines = blocks[-1].split("\r\n")
    out = {"status": lines[0].split(" ", 2)[1]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        out[name.strip().lower()] = value.strip()
    return out


@pytest.fixture
def django_server(home):
    global urlpatterns
    urlpatterns = _urlpatterns()
    with django_app(__name__) as app, thread_server(app) as url:
        yield url


def test_issue_view_with_only_its_import_changed(django_server, home, tmp_path):
    out, dump = tmp_path / "home.zip", tmp_path / "headers"
    curl("-D", str(dump), "-o", str(out), django_server + "home.zip")
    headers = headers_of(dump)
    assert headers["status"] == "200"
    assert headers["content-disposition"] == 'attachment; filename="home.zip"'
    expected = expected_of(home)
    # Relative names (zipfile's rule: no leading slash), valid directory entries.
    assert all(not name.startswith("/") for name in expected)
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(expected)
        for info in archive.infolist():
            if info.is_dir():
                assert info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x08
    check_all(out, expected)


def test_issue_view_with_archive_response_exact_length_range_resume(django_server, home,
                                                                    tmp_path):
    url = django_server + "sized/home.zip"
    out, dump = tmp_path / "home.zip", tmp_path / "headers"
    curl("-D", str(dump), "-o", str(out), url)
    headers = headers_of(dump)
    whole = out.read_bytes()
    assert headers["status"] == "200"
    assert headers["content-length"] == str(len(whole))
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"].startswith('attachment; filename="home.zip"')
    expected = expected_of(home)
    check_all(out, expected, java=False)  # stored with data descriptors: see README

    part = tmp_path / "part"
    curl("-D", str(dump), "-r", "1000-1999", "-o", str(part), url)
    assert headers_of(dump)["status"] == "206"
    assert part.read_bytes() == whole[1000:2000]

    cut = tmp_path / "resumed.zip"
    cut.write_bytes(whole[: len(whole) // 3])
    curl("-C", "-", "-o", str(cut), url)
    assert cut.read_bytes() == whole
    check_unzip(cut)


def test_flask_send_archive_over_waitress(home, tmp_path):
    from flask import Flask

    from zipwsgi.flask import send_archive

    app = Flask(__name__)

    @app.route("/<name>.zip")
    def download(name):
        return send_archive(ZipStream.from_path(Path.home(), arcname=""), f"{name} €.zip")

    with thread_server(app) as url:
        out, dump = tmp_path / "home.zip", tmp_path / "headers"
        curl("-D", str(dump), "-o", str(out), url + "home.zip")
        headers = headers_of(dump)
        whole = out.read_bytes()
        assert headers["content-length"] == str(len(whole))
        assert "filename*=UTF-8''home%20%E2%82%AC.zip" in headers["content-disposition"]
        expected = {
            (p.relative_to(home).as_posix() + ("/" if p.is_dir() else "")):
                (None if p.is_dir() else p.read_bytes())
            for p in home.glob("**/*")
        }
        check_all(out, expected, java=False)
        cut = tmp_path / "resumed.zip"
        cut.write_bytes(whole[: len(whole) // 2])
        curl("-C", "-", "-o", str(cut), url + "home.zip")
        assert cut.read_bytes() == whole
        curl("-D", str(dump), "-o", str(tmp_path / "x"), "-H", f"If-None-Match: {headers['etag']}",
             url + "home.zip")
        assert headers_of(dump)["status"] == "304"


# --- zipstream-ng's README examples, ported -------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "path" / "to" / "files"
    (root / "nested").mkdir(parents=True)
    (root / "nested" / "deep.txt").write_bytes(b"deep\n" * 10)
    (root / "top.txt").write_bytes(b"top\n")
    (root / "empty").mkdir()
    (tmp_path / "path" / "to" / "file.txt").write_bytes(b"a single file\n")
    return root


def tree_of(folder: Path, under: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {under + "/": None} if under else {}
    for path in folder.glob("**/*"):
        name = (f"{under}/" if under else "") + path.relative_to(folder).as_posix()
        out[name + "/" if path.is_dir() else name] = None if path.is_dir() else path.read_bytes()
    return out


def test_ng_simple_from_path(files, tmp_path):
    zs = ZipStream.from_path(str(files) + "/")
    with open(tmp_path / "files.zip", "wb") as f:
        f.writelines(zs)
    assert (tmp_path / "files.zip").stat().st_size == zs.size
    check_all(tmp_path / "files.zip", tree_of(files, "files"), java=False)


def test_ng_demo_of_more_of_the_api(files, tmp_path):
    import random

    # ZipStream(compress_type=ZIP_DEFLATED, compress_level=9) in zipstream-ng.
    zs = ZipStream(compression=zipfile.ZIP_DEFLATED, level=9)
    zs.comment = "Contains compressed important files"
    zs.add_path(str(files) + "/")
    zs.add_path(files.parent / "file.txt", "data.txt")
    blocks = [random.randbytes(1024) for _ in range(10)]

    def random_data():
        yield from blocks

    zs.add(random_data(), "random.bin")
    zs.add("This is some text", "README.txt")
    with open(tmp_path / "files.zip", "wb") as f:
        f.writelines(zs)
    expected = tree_of(files, "files")
    expected.update({"data.txt": b"a single file\n", "random.bin": b"".join(blocks),
                     "README.txt": b"This is some text"})
    check_all(tmp_path / "files.zip", expected)
    with zipfile.ZipFile(tmp_path / "files.zip") as archive:
        assert archive.comment == b"Contains compressed important files"
        assert archive.getinfo("README.txt").compress_type == zipfile.ZIP_DEFLATED


def test_ng_flask_example(files):
    from flask import Flask

    from zipwsgi.flask import send_archive

    app = Flask(__name__)

    @app.route("/<path:path>", methods=["GET"])
    def stream_zip(path):
        name = os.path.basename(os.path.normpath(path))
        return send_archive(ZipStream.from_path("/" + path), f"{name}.zip")

    response = webtest.TestApp(app).get(str(files))
    assert response.headers["Content-Length"] == str(len(response.body))
    assert response.headers["Content-Disposition"] == 'attachment; filename="files.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.body))
    assert archive.read("files/top.txt") == b"top\n"


def test_ng_partial_generation_and_a_last_minute_manifest(files, tmp_path):
    """zipstream-ng streams the files, then adds a manifest of get_info() before
    finalizing. Here the manifest is a callable, run when the stream reaches it: every
    entry before it has been written by then, its CRC known."""
    zs = ZipStream.from_path(files)
    zs.add(lambda: json.dumps(zs.info_list(), indent=2).encode(), "manifest.json")
    with open(tmp_path / "files.zip", "wb") as f:
        f.writelines(zs)
    with zipfile.ZipFile(tmp_path / "files.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
        by_name = {item["name"]: item for item in manifest}
        for info in archive.infolist():
            if info.filename != "manifest.json":
                item = by_name[info.filename]
                assert item["CRC"] == info.CRC and item["size"] == info.file_size
                assert tuple(item["datetime"]) == info.date_time
                assert item["is_dir"] == info.is_dir()


# --- zipstream-ng's names on ZipStream ------------------------------------------------------


def test_info_list_keys_and_what_is_known_before_streaming(files):
    zs = ZipStream()
    zs.add_path(files, "files")
    zs.add(b"bytes", "b.txt", mtime=1_700_000_001)
    zs.add(lambda: iter([b"x"]), "it.txt", compression=zipfile.ZIP_DEFLATED, level=9)
    info = {item["name"]: item for item in zs.info_list()}
    assert set(info["b.txt"]) >= {"name", "size", "compressed_size", "datetime", "is_dir",
                                  "CRC", "compress_type"}
    assert info["b.txt"] == {
        "name": "b.txt", "size": 5, "compressed_size": 5,
        "datetime": (2023, 11, 14, 22, 13, 20), "is_dir": False,
        "CRC": zipfile.crc32(b"bytes") if hasattr(zipfile, "crc32") else info["b.txt"]["CRC"],
        "compress_type": zipfile.ZIP_STORED, "compress_level": None,
    }
    assert info["files/"]["is_dir"] and info["files/"]["CRC"] == 0
    assert info["files/top.txt"]["CRC"] is None  # read only while streaming
    deflated = info["it.txt"]
    assert deflated["size"] is None and deflated["compressed_size"] is None
    assert deflated["compress_type"] == zipfile.ZIP_DEFLATED and deflated["compress_level"] == 9
    b"".join(zs)
    after = {item["name"]: item for item in zs.info_list()}
    assert after["files/top.txt"]["CRC"] == zipfile.ZipFile(
        io.BytesIO(b"".join(zs))).getinfo("files/top.txt").CRC


def test_comment_is_written_counted_and_validated(files, low_limit):
    for compression in ("stored", "deflate"):
        zs = ZipStream(compression)
        zs.add_path(files)
        zs.comment = b"\x00binary \xff comment" * 100
        body = b"".join(zs)
        if compression == "stored":
            assert len(body) == zs.size  # counted in the plan, with zip64 end records too
        assert zipfile.ZipFile(io.BytesIO(body)).comment == b"\x00binary \xff comment" * 100
    zs = ZipStream(comment="é")
    assert zs.comment == "é".encode()
    before = zs.size
    zs.comment = b"x" * 65535
    assert zs.size == before - 2 + 65535
    with pytest.raises(ValueError, match="65535"):
        zs.comment = b"x" * 65536
    with pytest.raises(ValueError, match="signature"):
        zs.comment = b"PK\x05\x06 would end the archive early"
    with pytest.raises(TypeError):
        zs.comment = 42  # type: ignore[assignment]
    tagged = ZipStream()
    tagged.add(b"a", "a")
    first = tagged.fingerprint()
    tagged.comment = b"new"
    assert tagged.fingerprint() != first  # a new comment is a new representation


def test_zipfile_constants_as_compression():
    assert ZipStream(zipfile.ZIP_STORED).compression == "stored"
    assert ZipStream(zipfile.ZIP_DEFLATED).compression == "deflate"
    zs = ZipStream()
    zs.add(b"x" * 100, "x", compression=zipfile.ZIP_DEFLATED)
    assert zs.info_list()[0]["compress_type"] == zipfile.ZIP_DEFLATED
    for bad in (zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2, True, "zip"):
        with pytest.raises(ValueError):
            ZipStream(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ZipMiddleware(lambda e, s: [], compression=zipfile.ZIP_LZMA)
    ZipMiddleware(lambda e, s: [], compression=zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize("root", ["", "/", "."])
def test_add_path_contents_at_the_root(files, root, tmp_path):
    zs = ZipStream()
    zs.add_path(files, root)
    assert sorted(zs.names) == sorted(tree_of(files, ""))
    out = tmp_path / "root.zip"
    out.write_bytes(b"".join(zs))
    check_all(out, tree_of(files, ""), java=False)
    with pytest.raises(ArchiveNameError):
        ZipStream().add_path(files / "top.txt", root)  # a file needs a name
    with pytest.raises(ArchiveNameError):
        ZipStream().add_path(files, root, recursive=False)  # and so does a folder entry


def test_recursive_false_adds_the_folder_alone(files):
    zs = ZipStream()
    zs.add_path(files, "files", recursive=False)
    assert zs.names == ["files/"]
    # zipstream-ng's way to walk yourself: each entry with recursive=False, no error.
    walked = ZipStream()
    for path in sorted(files.glob("**/*")):
        walked.add_path(path, path.relative_to(files).as_posix(), recursive=False)
    assert sorted(walked.names) == sorted(tree_of(files, ""))


def test_last_modified_as_an_http_date(files):
    zs = ZipStream()
    assert zs.last_modified is None and zs.last_modified_datetime is None
    zs.add(b"x", "x", mtime=1_700_000_000)
    assert zs.last_modified == 1_700_000_000  # an int, as before
    when = zs.last_modified_datetime
    assert when == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)
    from django.utils.http import http_date
    from werkzeug.http import http_date as werkzeug_date

    assert http_date(zs.last_modified) == werkzeug_date(when) == "Tue, 14 Nov 2023 22:13:20 GMT"


# --- the literal port of a glob loop ----------------------------------------------------------


def test_glob_port_is_refused_naming_both_paths(files):
    zs = ZipStream()
    with pytest.raises(NestedPathError) as caught:
        for path in sorted(files.glob("**/*")):
            zs.add_path(path)
    message = str(caught.value)
    assert str(files / "nested") in message and str(files / "nested" / "deep.txt") in message


def test_a_folder_around_a_path_added_already_is_refused(files):
    zs = ZipStream()
    zs.add_path(files / "nested" / "deep.txt")
    with pytest.raises(NestedPathError, match="contains"):
        zs.add_path(files)
    zs = ZipStream()
    zs.add_path(files / "nested", "n")
    with pytest.raises(NestedPathError, match="is"):
        zs.add_path(files / "nested", "again")
    with pytest.raises(NestedPathError, match="contains"):
        zs.add_path(files, "outer")


def test_a_link_into_a_walked_folder_is_seen_through(files, tmp_path):
    link = tmp_path / "link-to-nested"
    link.symlink_to(files / "nested")
    zs = ZipStream()
    zs.add_path(files)
    with pytest.raises(NestedPathError):
        zs.add_path(link)


def test_explicit_duplicates_are_still_fine(files):
    zs = ZipStream()
    zs.add_path(files / "top.txt", "one.txt")
    zs.add_path(files / "top.txt", "two.txt")  # the same file, named twice on purpose
    zs.add(b"same", "a")
    zs.add(b"same", "b")
    zs.add_path(files / "nested", "n")
    zs.add_path(files / "top.txt", "outside-the-walk.txt")
    assert len(zs.names) == 7


# --- django-zip-stream's unencoded locations ---------------------------------------------------


def test_a_raw_space_in_a_location_says_percent_encode(tmp_path, caplog):
    from zipwsgi.errors import ManifestError
    from zipwsgi.http.manifest import parse_manifest

    with pytest.raises(ManifestError, match="percent-encode locations"):
        parse_manifest(b"- 5 /files/x")
    (tmp_path / "my file.txt").write_bytes(b"12345")

    def app(environ, start_response):
        # What django-zip-stream writes: raw paths, '-' CRCs, names starting with '/'.
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [b"- 5 /files/my file.txt /my file.txt"]

    client = webtest.TestApp(ZipMiddleware(app, roots={"/files/": str(tmp_path)}))
    with caplog.at_level(logging.WARNING, logger="zipwsgi"):
        response = client.get("/", status=500)
    assert b"PK" not in response.body
    assert "percent-encode locations" in caplog.text


# --- packaging ----------------------------------------------------------------------------------


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def test_every_folder_of_the_package_is_a_declared_package():
    """setuptools warns ("Package would be ignored") for any importable folder missing
    from ``packages``: with find_namespace every folder is one, so none can be missing."""
    from setuptools import find_namespace_packages

    config = _setup_cfg()
    assert config["options"]["packages"].strip() == "find_namespace:"
    find = config["options.packages.find"]
    split = lambda value: [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]  # noqa: E731
    packages = set(find_namespace_packages(str(ROOT), include=split(find["include"]),
                                           exclude=split(find.get("exclude", ""))))
    folders = {
        ".".join(Path(folder).relative_to(ROOT).parts)
        for folder, _, _ in os.walk(ROOT / "zipwsgi")
        if "__pycache__" not in folder
    }
    assert folders <= packages
    assert not any("__pycache__" in package for package in packages)
    data = config["options.package_data"]
    assert "zipwsgi.demo" in data and "zipwsgi.app.templates" in data
    extras = config["options.extras_require"]["examples"].split()
    assert {"flask", "bottle", "pyramid", "django"} <= set(extras)
    assert "zipwsgi[examples]" in (ROOT / "examples" / "README.md").read_text("utf-8")


@pytest.mark.slow
def test_wheel_builds_without_warnings_and_ships_the_data(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.md"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    for path in (ROOT / "zipwsgi").rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = source / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(tmp_path / "w")],
        cwd=source, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "BuildBackendWarning" not in said and "would be ignored" not in said, said
    (wheel,) = (tmp_path / "w").glob("zipwsgi-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name for name in names if name.startswith("zipwsgi/")}
    for path in list((ROOT / "zipwsgi" / "demo").rglob("*")) + list(
        (ROOT / "zipwsgi" / "app" / "templates").rglob("*")
    ):
        if path.is_file() and "__pycache__" not in path.parts:
            assert path.relative_to(ROOT).as_posix() in shipped
    assert "zipwsgi/compat/zipstream.py" in shipped and "zipwsgi/py.typed" in shipped
    assert not any("__pycache__" in name for name in names)
