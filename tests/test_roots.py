"""Roots: URL prefixes mapped to folders, and the confinement of every location under them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from zipwsgi.errors import OutsideRootError
from zipwsgi.http.roots import Roots


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """``served/`` with a file, a subfolder, a hidden file, a link inside and two links
    out; ``outside/secret.txt`` beside it."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"secret")
    root = tmp_path / "served"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.txt").write_bytes(b"bravo!")
    (root / ".hidden").write_bytes(b"h")
    (root / "alias").symlink_to(root / "sub")  # a folder link that stays inside
    (root / "out").symlink_to(tmp_path / "outside")  # a folder link out
    (root / "leak.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    (root / "relative").symlink_to("../outside")
    return Path(os.path.realpath(root))  # locate answers real paths


# --- prefixes --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["files", "/files", "files/", "/files/", "//files//"])
def test_prefixes_are_normalised(prefix: str, served: Path) -> None:
    roots = Roots({prefix: served})
    assert roots.match("/files/a.txt") == ("/files/", "a.txt")
    assert roots.match("/filesX/a.txt") is None  # a prefix is a whole segment
    assert roots.match("/files") is None
    assert repr(roots) == f"Roots({{'/files/': {str(served)!r}}})"


@pytest.mark.parametrize("prefix", ["", "/"])
def test_an_empty_prefix_is_the_whole_site(prefix: str, served: Path) -> None:
    roots = Roots({prefix: served})
    assert roots.match("/a.txt") == ("/", "a.txt")
    assert roots.locate("/sub/b.txt")[0] == str(served / "sub" / "b.txt")


def test_longest_prefix_wins_whatever_the_order(served: Path) -> None:
    for mapping in ({"/files/": served, "/files/sub/": served / "sub"},
                    {"/files/sub/": served / "sub", "/files/": served}):
        roots = Roots(mapping)
        assert roots.match("/files/sub/b.txt") == ("/files/sub/", "b.txt")
        assert roots.match("/files/subway.txt") == ("/files/", "subway.txt")
        assert roots.match("/files/a.txt") == ("/files/", "a.txt")
    roots = Roots({"/": served, "/files/": served / "sub"})
    assert roots.locate("/files/b.txt")[0] == str(served / "sub" / "b.txt")
    assert roots.locate("/a.txt")[0] == str(served / "a.txt")


def test_truth_and_no_match(served: Path) -> None:
    assert not Roots()
    assert not Roots({})
    assert Roots({"/files/": served})
    assert Roots().match("/files/a.txt") is None
    assert Roots({"/files/": served}).locate("/elsewhere/a.txt") is None


# --- locate inside ---------------------------------------------------------------------------


def test_locate_a_file_with_its_stat(served: Path) -> None:
    path, st = Roots({"/files/": served}).locate("/files/sub/b.txt")
    assert path == str(served / "sub" / "b.txt")
    assert st is not None and st.st_size == 6


def test_locate_resolves_the_root_itself(tmp_path: Path, served: Path) -> None:
    """A root given through a symlink is served from its real path."""
    (tmp_path / "link-to-served").symlink_to(served)
    path, _ = Roots({"/files/": tmp_path / "link-to-served"}).locate("/files/a.txt")
    assert path == os.path.join(os.path.realpath(served), "a.txt")


def test_locate_does_not_require_the_file(served: Path) -> None:
    path, st = Roots({"/files/": served}).locate("/files/sub/missing.txt")
    assert path == str(served / "sub" / "missing.txt")
    assert st is None


def test_a_link_that_stays_inside_is_followed(served: Path) -> None:
    roots = Roots({"/files/": served})
    path, st = roots.locate("/files/alias/b.txt")
    assert path == str(served / "sub" / "b.txt")
    assert st is not None and st.st_size == 6  # the step after the link is a plain file
    path, st = roots.locate("/files/alias")
    assert path == str(served / "sub")
    assert st is None  # the last step was a link: its lstat is not the target's stat


def test_hidden_names_are_not_refused(served: Path) -> None:
    """The app wrote the manifest and may list them on purpose."""
    path, st = Roots({"/files/": served}).locate("/files/.hidden")
    assert path == str(served / ".hidden")
    assert st is not None


def test_percent_escapes_are_not_decoded_again(served: Path) -> None:
    path, _ = Roots({"/files/": served}).locate("/files/%2e%2e/%2Foutside")
    assert path == str(served / "%2e%2e" / "%2Foutside")


def test_empty_and_dot_segments_are_dropped(served: Path) -> None:
    path, _ = Roots({"/files/": served}).locate("/files/./sub//b.txt")
    assert path == str(served / "sub" / "b.txt")


# --- locate outside --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "/files/../outside/secret.txt",
        "/files/sub/../../outside/secret.txt",
        "/files/sub/..",
        "/files/..",
        "/files/a\x00.txt",
        "/files/sub\\..\\..\\outside",
        "/files/sub\\b.txt",
    ],
)
def test_climbing_is_refused(location: str, served: Path) -> None:
    with pytest.raises(OutsideRootError) as caught:
        Roots({"/files/": served}).locate(location)
    assert repr(location) in str(caught.value)  # the log line says which location


@pytest.mark.parametrize(
    "location",
    ["/files/out/secret.txt", "/files/out", "/files/leak.txt", "/files/relative/secret.txt"],
)
def test_links_out_are_refused(location: str, served: Path) -> None:
    with pytest.raises(OutsideRootError):
        Roots({"/files/": served}).locate(location)


def test_a_link_inside_a_nested_root_pointing_to_its_parent_is_refused(served: Path) -> None:
    """``/files/sub/`` is its own root: a link to the outer root leaves it."""
    (served / "sub" / "up").symlink_to(served)
    roots = Roots({"/files/": served, "/files/sub/": served / "sub"})
    with pytest.raises(OutsideRootError):
        roots.locate("/files/sub/up/a.txt")
    assert roots.locate("/files/a.txt")[0] == str(served / "a.txt")


@pytest.mark.parametrize("location", ["/files/", "/files//", "/files/.", "/files/./."])
def test_the_root_itself_is_not_a_location(location: str, served: Path) -> None:
    with pytest.raises(OutsideRootError, match="root folder itself"):
        Roots({"/files/": served}).locate(location)


def test_a_missing_root_folder_is_found_out_when_used(tmp_path: Path) -> None:
    later = tmp_path / "later"
    roots = Roots({"/files/": later, "/other/": tmp_path})  # no error yet
    with pytest.raises(NotADirectoryError):
        roots.locate("/files/a.txt")
    assert roots.locate("/other/x")[0] == str(tmp_path / "x")
    later.mkdir()  # a root may be created after the middleware is
    assert roots.locate("/files/a.txt")[0] == str(later / "a.txt")


def test_a_root_that_is_a_file_is_refused(served: Path) -> None:
    with pytest.raises(OSError):
        Roots({"/files/": served / "a.txt"}).locate("/files/x")


# --- the folders cache -----------------------------------------------------------------------


def test_the_folders_cache_holds_each_folder_once(served: Path) -> None:
    folders: dict[str, str] = {}
    roots = Roots({"/files/": served})
    path, _ = roots.locate("/files/alias/b.txt", folders)
    assert path == str(served / "sub" / "b.txt")
    roots.locate("/files/alias/c.txt", folders)  # missing files are located too
    assert list(folders.values()) == [str(served / "sub")]


def test_the_folders_cache_is_used(served: Path, tmp_path: Path) -> None:
    """A cached folder is not looked at again: what the cache says is where the path goes
    (which is why a cache lives for one manifest only)."""
    roots = Roots({"/files/": served})
    folders: dict[str, str] = {}
    roots.locate("/files/sub/a.txt", folders)
    (key,) = folders
    folders[key] = str(served / "alias-target-from-cache")
    path, _ = roots.locate("/files/sub/b.txt", folders)
    assert path == str(served / "alias-target-from-cache" / "b.txt")
    # Without the cache the same location resolves from disk.
    assert roots.locate("/files/sub/b.txt")[0] == str(served / "sub" / "b.txt")


def test_one_cache_for_nested_roots_keeps_each_root_confined(served: Path, tmp_path: Path) -> None:
    """A link inside the outer root that leaves the inner one: resolved under the outer
    root first, it must not be taken as inside the inner root from the cache."""
    inner = served / "sub"
    (inner / "up").symlink_to(served)  # inside "/outer/", outside "/inner/"
    roots = Roots({"/outer/": served, "/inner/": inner})
    folders: dict[str, str] = {}
    assert roots.locate("/outer/sub/up/a.txt", folders)[0] == str(served / "a.txt")
    with pytest.raises(OutsideRootError):
        roots.locate("/inner/up/a.txt", folders)


def test_a_fresh_cache_sees_a_folder_swapped_for_a_link(served: Path, tmp_path: Path) -> None:
    roots = Roots({"/files/": served})
    folders: dict[str, str] = {}
    roots.locate("/files/sub/b.txt", folders)
    (served / "sub" / "b.txt").unlink()
    (served / "sub").rmdir()
    (served / "sub").symlink_to(tmp_path / "outside")
    with pytest.raises(OutsideRootError):
        roots.locate("/files/sub/secret.txt", {})


# --- the text of folders, split once ----------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    ["/files/sub/b.txt", "/files/sub/..", "/files/sub/.", "/files/sub/", "/files/sub/a\\b",
     "/files/sub/a\x00b", "/files/sub/" + "é" * 1100, "/files/sub//b.txt", "files/sub/b.txt",
     "/files/" + "d/" * 253 + "x", "/files/" + "d/" * 254 + "x", "/files/sub/%2e%2e"],
)
def test_a_known_folder_splits_its_files_as_the_first_did(served: Path, location: str) -> None:
    """Roots.split remembers what a folder's text gave; each file's own segment must
    still pass exactly the checks the whole location would."""

    def outcome(roots: Roots) -> object:
        try:
            split = roots.split(location)
        except OSError as exc:
            return type(exc)
        return None if split is None else split[1]

    fresh = Roots({"/files/": served})
    warm = Roots({"/files/": served})
    folder = location.rpartition("/")[0] + "/"
    with contextlib.suppress(OSError):
        warm.split(folder + "warm.txt")  # the folder's text is known from here on
    assert outcome(warm) == outcome(fresh)
