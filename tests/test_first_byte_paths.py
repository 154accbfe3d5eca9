"""The first byte's fast paths against the general paths they stand in for (issue #12).

Each speed trick of the manifest build (parse by columns, names and locations checked in
bulk, the folder-joined ``lstat``, ``add_files``, the columnar fingerprint) has a general
path that explains errors. Here the two are run on the same input and must agree: the
same entries, the same archive bytes, the same refusal naming the same line.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zipwsgi.engine.files import FileSource
from zipwsgi.engine.names import check_unique, new_files_folders, record_folders
from zipwsgi.engine.tarstream import TarStream
from zipwsgi.engine.zipstream import ZipStream
from zipwsgi.errors import (
    ArchiveNameError,
    DuplicateNameError,
    ManifestError,
    Refusal,
    SourceChangedError,
    SourceUnavailableError,
)
from zipwsgi.http.manifest import parse_columns, parse_manifest, parse_manifest_lines
from zipwsgi.http.manifest_archive import ManifestArchive
from zipwsgi.http.roots import Roots
from zipwsgi.paths import normalise_name
from zipwsgi.paths.names import plain_names

# -- parse -------------------------------------------------------------------------------


def lines_way(body: bytes, **options: Any) -> Any:
    try:
        return parse_manifest_lines(body, **options)
    except (ManifestError, LookupError) as exc:
        return type(exc), str(exc), getattr(exc, "line", None)


def both_ways(body: bytes, **options: Any) -> Any:
    try:
        return parse_manifest(body, **options)
    except (ManifestError, LookupError) as exc:
        return type(exc), str(exc), getattr(exc, "line", None)


BODIES = [
    b"- 1 /f/a a\n- 2 /f/b b\n",
    b"- 1 /f/a a\r\n- 2 /f/b b\r\n",
    b"- 1 /f/a a\r- 2 /f/b b\r",
    b"- 1 /f/a a\r\n\r\n\n- 2 /f/b b\n\n\n",
    b"\n\r\n- 1 /f/a a\n\r- 2 /f/b b",
    b"1a2B3c4D 1 /f/a%20b a  b\n0 2 /f/%D0%9F \xd0\x9f",
    b"-   1   /f/a   name with  spaces ",
    b"- 1 /f/a?x=1 a\n",
    b"- 0 @directory d/\n- 1 /f/a d/a\n",
    b"- 1 %40directory a\n",
    b"- 1 /f/a%zz a\n",
    b"- 1 /f/a%0Ab a\n",
    b"- 1 /f/a%00b a\n",
    b"- 1 /f/%ff a\n",
    b"- 1 /f/a \xff\n",
    b"x 1 /f/a a\n- 1 /f/b b\n",
    b"- 1 /f/a a\n- 99999999999999999999 /f/b b\n",
    b"- 4611686018427387905 /f/b b\n",
    b"- 1 /f/a\n",
    b" - 1 /f/a a\n",
    b"- 1\t/f/a a\n",
    b"- 1 /f/a a\x00b\n",
    b"",
    b"\n\n",
    b"123456789 1 /f/a a\n",
]


@pytest.mark.parametrize("body", BODIES)
def test_parse_by_columns_gives_what_lines_give(body: bytes) -> None:
    assert both_ways(body) == lines_way(body)
    columns = parse_columns(body)
    if columns is not None:
        assert columns.entries() == parse_manifest_lines(body)
        assert [columns.entry(i) for i in range(len(columns))] == columns.entries()


def test_limits_are_the_lines_ones() -> None:
    body = b"".join(b"- 1 /f/%d n%d\n" % (i, i) for i in range(5))
    assert both_ways(body, max_entries=4) == lines_way(body, max_entries=4)
    assert both_ways(body, max_bytes=10) == lines_way(body, max_bytes=10)
    assert both_ways(body, name_encoding="cp1252") == lines_way(body, name_encoding="cp1252")
    assert both_ways(b"- 1 /f/a \xe9", name_encoding="cp1252")[0].name == "é"


FIELD = st.sampled_from(["-", "0", "1", "00000001", "123456789", "ffffffff", "x", "", "%",
                         "%2", "%20", "%41", "/f/a", "/f/b", "?", "@directory", "é", "\t",
                         "\x00", "%0D", "\\", "a b"])
SEP = st.sampled_from(["\n", "\r", "\r\n", "\n\n", "\r\r\n", " \n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(FIELD, min_size=0, max_size=5), SEP), max_size=6))
def test_parse_property(lines: list[tuple[list[str], str]]) -> None:
    body = "".join(" ".join(fields) + sep for fields, sep in lines).encode()
    assert both_ways(body) == lines_way(body)


# -- names -------------------------------------------------------------------------------

NAME = st.text(alphabet="ab/.\\:C\x00 \n", max_size=8)


@settings(max_examples=500, deadline=None)
@given(st.lists(NAME, max_size=5))
def test_plain_names_means_normalise_changes_nothing(names: list[str]) -> None:
    def unchanged(name: str) -> bool:
        try:
            return normalise_name(name) == name
        except ArchiveNameError:
            return False

    if plain_names(names):
        assert all(unchanged(name) for name in names)
    if all(unchanged(name) and "\n" not in name and not name.startswith(".")
           and "/." not in name for name in names):
        assert plain_names(names)


FILE_NAME = st.text(alphabet="ab/", min_size=1, max_size=5).filter(
    lambda n: "//" not in n and not n.startswith("/") and not n.endswith("/"))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet="ab/", min_size=1, max_size=5), max_size=3),
       st.lists(FILE_NAME, max_size=5))
def test_bulk_clash_check_is_check_unique_in_order(before: list[str], names: list[str]) -> None:
    existing: dict[str, None] = {}
    folders: dict[str, None] = {}
    for name in before:  # names (files and folders) already in the archive, all fine
        try:
            check_unique(existing, name, name.endswith("/"), False, folders)
        except DuplicateNameError:
            continue
        existing[name] = None
        record_folders(folders, name)
    bulk = new_files_folders(names, dict(existing), dict(folders))
    refused = False
    for name in names:
        try:
            check_unique(existing, name, False, False, folders)
        except DuplicateNameError:
            refused = True
            break
        existing[name] = None
        record_folders(folders, name)
    assert (bulk is None) == refused
    if bulk is not None:
        assert set(folders) >= bulk


# -- entries -----------------------------------------------------------------------------


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for index in range(30):
        folder = root / f"d{index % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.txt").write_bytes(b"x" * (index * 37 % 300))
    (root / "Отчёт.txt").write_bytes(b"report")
    return root


def files_of(tree: Path) -> list[tuple[str, Path]]:
    return sorted((str(p.relative_to(tree)), p) for p in tree.rglob("*") if p.is_file())


@pytest.mark.parametrize("stream_class", [ZipStream, TarStream])
@pytest.mark.parametrize("options", [{}, {"precompute_crc": True}, {"compression": "deflate"}])
def test_add_files_makes_the_archive_add_file_makes(
    tree: Path, stream_class: Any, options: dict[str, Any]
) -> None:
    if stream_class is TarStream:
        options = {}  # tar has neither a CRC nor a per-entry method
    files = files_of(tree)
    names = [f"out/{name}" for name, _ in files]
    crcs: list[Optional[int]] = [None] * len(files)
    bulk = stream_class(**options)
    bulk.mkdir("first")
    one_first = stream_class(**options)
    one_first.mkdir("first")
    for name, (_, path) in zip(names, files):
        one_first.add_file(FileSource(str(path)), name)
    checked = bulk.check_files(names)
    assert checked is not None
    bulk.add_files(checked, [FileSource(str(p)) for _, p in files], crcs)
    assert b"".join(bulk) == b"".join(one_first)
    assert bulk.fingerprint() == one_first.fingerprint()
    assert bulk.size == one_first.size and bulk.names == one_first.names


def test_add_files_hands_a_bad_crc_to_add_file(tree: Path) -> None:
    files = files_of(tree)[:3]
    stream = ZipStream()
    checked = stream.check_files([name for name, _ in files])
    assert checked is not None
    with pytest.raises(ValueError, match="crc out of range"):
        stream.add_files(checked, [FileSource(str(p)) for _, p in files], [None, 2**32, None])
    assert stream.names == [files[0][0]]  # the lines before were added, as add_file does
    with pytest.raises(ValueError, match="check again"):
        stream.add_files(checked, [], [])


@pytest.mark.parametrize("names", [
    ["a", "a"], ["a", "a/b"], ["a/b", "a"], ["./a"], ["a/../b"], ["C:/a"], ["a\\b"], [""],
    ["a/"], ["mkdir"], ["file"], ["file/x"], ["x", "file/y/z"],
])
def test_check_files_refuses_what_add_file_refuses(names: list[str]) -> None:
    stream = ZipStream()
    stream.mkdir("mkdir")
    stream.add(b"data", "file")
    assert stream.check_files(names) is None
    assert stream.check_files(["mkdir/x", "other", "a/b/c"]) is not None


# -- the manifest build ------------------------------------------------------------------


def build(root: Path, body: bytes, *, lazy: bool, fast: bool, fmt: str = "zip",
          monkeypatch: Optional[pytest.MonkeyPatch] = None) -> Any:
    roots = Roots({"/files/": str(root)})
    archive = ManifestArchive(
        None, roots, lambda fmt, charset: (ZipStream() if fmt == "zip" else TarStream()),  # type: ignore[arg-type]
        max_entries=1000, max_bytes=1 << 20, allow_subrequests=False,
        verify_sizes="lazy" if lazy else "eager",
    )
    if not fast:
        archive._add_plain = lambda stream, columns: False  # type: ignore[method-assign]
    try:
        stream, _ = archive.build(body, None, None, {}, fmt=fmt)
    except Refusal as exc:
        return ("refused", exc.detail, exc.public)
    try:
        data = b"".join(stream)
    except (SourceUnavailableError, SourceChangedError) as exc:  # lazy: mid-stream
        return ("raised", type(exc), str(exc))
    return data, stream.fingerprint(), stream.size


def manifest_for(root: Path, rels: list[str], sizes: Optional[dict[str, int]] = None,
                 names: Optional[dict[str, str]] = None) -> bytes:
    lines = []
    for rel in rels:
        path = root / rel
        size = (sizes or {}).get(rel, path.stat().st_size if path.exists() else 5)
        name = (names or {}).get(rel, f"out/{rel}")
        lines.append(f"- {size} /files/{quote(rel)} {name}")
    return ("\n".join(lines) + "\n").encode()


def everything(tree: Path) -> list[str]:
    return [name for name, _ in files_of(tree)]


def case_plain(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels)


def case_duplicate_name(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels, names={rels[5]: f"out/{rels[2]}"})


def case_name_clash(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels, names={rels[7]: "out/d1"})


def case_name_normalised(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels, names={rels[3]: "/C:/out/./x\\y"})


def case_name_escapes(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels, names={rels[4]: "out/../../x"})


def case_missing(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels[:6] + ["d0/nothing.txt"] + rels[6:])


def case_missing_folder(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels[:6] + ["nowhere/nothing.txt"] + rels[6:])


def case_wrong_size(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels, sizes={rels[9]: 12345})


def case_dotdot(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels) + b"- 5 /files/d0/../../secret.txt out/s\n"


def case_dot_segments(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels) + b"- 0 /files/./d0//f0.txt out/dot\n"


def case_link_inside(tree: Path, rels: list[str]) -> bytes:
    (tree / "d2" / "link.txt").symlink_to(tree / "d1" / "f1.txt")
    return manifest_for(tree, rels + ["d2/link.txt"])


def case_link_out(tree: Path, rels: list[str]) -> bytes:
    (tree.parent / "secret.txt").write_bytes(b"secret")
    (tree / "d2" / "out.txt").symlink_to(tree.parent / "secret.txt")
    return manifest_for(tree, rels + ["d2/out.txt"])


def case_folder_link_out(tree: Path, rels: list[str]) -> bytes:
    (tree.parent / "elsewhere").mkdir()
    (tree.parent / "elsewhere" / "x.txt").write_bytes(b"x")
    (tree / "away").symlink_to(tree.parent / "elsewhere")
    return manifest_for(tree, rels + ["away/x.txt"])


def case_a_folder(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels, sizes={}) + b"- 0 /files/d3 out/folder\n"


def case_unreadable(tree: Path, rels: list[str]) -> bytes:
    os.chmod(tree / rels[4], 0)
    return manifest_for(tree, rels)


def case_others_cannot_read(tree: Path, rels: list[str]) -> bytes:
    os.chmod(tree / rels[4], 0o600)
    return manifest_for(tree, rels)


def case_query(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels) + f"- 0 /files/{rels[0]}%3Fx out/q\n".encode()


def case_directory_line(tree: Path, rels: list[str]) -> bytes:
    return b"- 0 @directory out/empty/\n" + manifest_for(tree, rels)


def case_under_no_root(tree: Path, rels: list[str]) -> bytes:
    return manifest_for(tree, rels) + b"- 5 /other/x out/other\n"


CASES = [case_plain, case_duplicate_name, case_name_clash, case_name_normalised,
         case_name_escapes, case_missing, case_missing_folder, case_wrong_size, case_dotdot,
         case_dot_segments, case_link_inside, case_link_out, case_folder_link_out,
         case_a_folder, case_unreadable, case_others_cannot_read, case_query,
         case_directory_line, case_under_no_root]


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__[5:])
def test_the_fast_build_is_the_general_build(tree: Path, case: Any, lazy: bool) -> None:
    body = case(tree, everything(tree))
    fast = build(tree, body, lazy=lazy, fast=True)
    general = build(tree, body, lazy=lazy, fast=False)
    assert fast == general
    if case is case_plain:
        assert fast[0].startswith(b"PK")
        names = zipfile.ZipFile(io.BytesIO(fast[0])).namelist()
        assert names == [f"out/{rel}" for rel in everything(tree)]
    if case in (case_duplicate_name, case_name_escapes, case_wrong_size, case_missing,
                case_link_out, case_dotdot) and not (lazy and case in (case_missing,
                                                                       case_wrong_size,
                                                                       case_link_out)):
        assert fast[0] == "refused" and "manifest line" in fast[2]


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize("link", [False, True], ids=["files", "a link inside"])
def test_the_fast_path_is_taken_and_lazy_gives_eagers_bytes(
    tree: Path, fmt: str, link: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rels = everything(tree)
    if link:  # followed by the fast path itself, as locate() follows it
        (tree / "d2" / "link.txt").symlink_to(tree / "d1" / "f1.txt")
        rels.insert(3, "d2/link.txt")
    body = manifest_for(tree, rels)
    taken: list[bool] = []
    original = ManifestArchive._add_plain

    def spy(self: ManifestArchive, stream: Any, columns: Any) -> bool:
        taken.append(original(self, stream, columns))
        return taken[-1]

    monkeypatch.setattr(ManifestArchive, "_add_plain", spy)
    eager = build(tree, body, lazy=False, fast=True, fmt=fmt)
    lazy = build(tree, body, lazy=True, fast=True, fmt=fmt)
    assert taken == [True, True]
    assert lazy[0] == eager[0] and lazy[2] == eager[2]
    assert eager == build(tree, body, lazy=False, fast=False, fmt=fmt)


# -- roots -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/files/", "/", "/a/b/"])
@pytest.mark.parametrize("link", [False, True])
def test_plain_paths_are_locates_paths(tmp_path: Path, prefix: str, link: bool) -> None:
    root = tmp_path / "root"
    (root / "x" / "y").mkdir(parents=True)
    (tmp_path / "root" / "real").mkdir()
    if link:  # a folder reached through a link inside the root: paths go by the bases
        (root / "x" / "z").symlink_to(root / "real")
    rels = ["top.txt", "x/a.txt", "x/y/b.txt"] + (["x/z/c.txt"] if link else [])
    locations = [prefix + rel for rel in rels]
    roots = Roots({prefix: str(root)})
    plain = roots.plain_folders(locations)
    assert plain is not None
    paths = Roots.plain_paths(plain, {})
    assert paths == [roots.locate(location, {})[0] for location in locations]

LOCATION = st.lists(st.sampled_from(["a", "b", ".", "..", "", ".h", "a?", "c\\", "\x00"]),
                    min_size=1, max_size=4).map(lambda parts: "/files/" + "/".join(parts))


@settings(max_examples=300, deadline=None)
@given(st.lists(LOCATION, min_size=1, max_size=5))
def test_plain_folders_agree_with_split(tmp_path_factory: Any, locations: list[str]) -> None:
    root = tmp_path_factory.getbasetemp() / "plain-root"
    root.mkdir(exist_ok=True)
    roots = Roots({"/files/": str(root)})
    plain = roots.plain_folders(locations)
    if plain is None:
        return
    for location in locations:
        split = roots.split(location)
        assert split is not None
        head, _, last = location.rpartition("/")
        assert plain.folders[head][0] is split[0] and (*plain.folders[head][1], last) == split[1]
        assert "?" not in location and "." not in split[1] and ".." not in split[1]


@pytest.mark.parametrize("case", [case_plain, case_link_inside, case_link_out, case_wrong_size,
                                  case_missing, case_others_cannot_read],
                         ids=lambda f: f.__name__[5:])
def test_files_stat_ed_by_slices_are_the_same(
    tree: Path, case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path stats files by slices (bounded memory): slices of 4 lines, so a link
    or a bad file falls in a later slice, give what one slice and the general build give."""
    body = case(tree, everything(tree))
    whole = build(tree, body, lazy=False, fast=True)
    monkeypatch.setattr("zipwsgi.http.manifest_archive._STAT_SLICE", 4)
    assert build(tree, body, lazy=False, fast=True) == whole
    assert build(tree, body, lazy=False, fast=False) == whole
