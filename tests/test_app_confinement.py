"""Nothing outside the root, whatever the path: attacks on every route of ZipApp.

Each attack is tried as a page, a folder URL, a ``.zip`` URL, a download query, and as a
selected entry (by query and by POST form, from the root and from a subfolder). Every
answer must be 403 or 404, and no byte of the secret outside the root (nor of a hidden
file inside it) may appear in any response, headers included.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from share_tree import HIDDEN_SECRET, SECRET, check_zip
from webtest import TestApp, TestResponse

from zipwsgi import ZipApp
from zipwsgi.errors import OutsideRootError
from zipwsgi.paths import Root


def assert_refused(response: TestResponse) -> None:
    assert response.status_int in (403, 404), (response.request.url, response.status)
    assert_clean(response)


def assert_clean(response: TestResponse) -> None:
    raw = response.body + str(response.headers).encode()
    for secret in (SECRET, HIDDEN_SECRET, b"TOP-SECRET", b"HIDDEN-SECRET"):
        assert secret not in raw, response.request.url
    assert b"Traceback" not in raw
    assert b"/outside" not in raw  # no file system path is ever echoed


# URL paths as a client sends them (webtest percent-decodes into PATH_INFO, as servers do).
URL_ATTACKS = [
    "/../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/..%2foutside%2fsecret.txt",
    "/docs/../../outside/secret.txt",
    "/docs/%2e%2e/%2e%2e/outside/secret.txt",
    "/..%5coutside%5csecret.txt",
    "/docs/..%5c..%5coutside",
    "/README.txt%00.zip",
    "/%00",
    "/docs%00/",
    "/escape/secret.txt",
    "/escape",
    "/escape/back/a.txt",
    "/leak.txt",
    "/abs/secret.txt",
    "/docs/deep-escape/secret.txt",
    "/docs/deep-escape",
    "/.private/key.txt",
    "/.private",
    "/peek/key.txt",
    "/peek",
    "/docs/.env",
    "/to-docs/.env",
    "/%2eprivate/key.txt",
    "/%252e%252e/outside/secret.txt",
]

# Selected entries, as the form would post them.
SELECTION_ATTACKS = [
    "../outside/secret.txt",
    "..",
    "../outside",
    "..\\outside\\secret.txt",
    "escape",
    "escape/secret.txt",
    "escape/back",
    "leak.txt",
    "abs",
    "docs/deep-escape",
    "docs/../../outside",
    ".private",
    ".private/key.txt",
    "peek",
    "docs/.env",
    "a\x00b",
    "%2e%2e/outside",
]


def variants(path: str) -> list[str]:
    path = path.rstrip("/")
    return [path, path + "/", path + ".zip", path + "/?download"]


@pytest.fixture()
def back_link(root: Path) -> None:
    """outside/back -> share/docs: a path out and back in must still be refused."""
    os.symlink(root / "docs", root.parent / "outside" / "back")


@pytest.mark.usefixtures("back_link")
@pytest.mark.parametrize("attack", URL_ATTACKS)
def test_url_attacks(app: TestApp, attack: str) -> None:
    for url in variants(attack):
        for method in (app.get, app.head):
            assert_refused(method(url, status="*"))
        assert_refused(app.get(url, headers={"Accept": "application/zip"}, status="*"))


@pytest.mark.usefixtures("back_link")
@pytest.mark.parametrize("attack", SELECTION_ATTACKS)
def test_selection_attacks(app: TestApp, attack: str) -> None:
    for folder in ("/", "/docs/"):
        query = "path=README.txt&path=" + quote(attack)
        assert_refused(app.get(f"{folder}?{query}", status="*"))
        assert_refused(app.post(folder, [("path", attack)], status="*"))
        assert_refused(app.post(folder, [("path", "a.txt"), ("path", attack)], status="*"))
        multipart = app.post(
            folder, [("path", attack)], content_type="multipart/form-data", status="*"
        )
        assert_refused(multipart)


@pytest.mark.parametrize(
    "path_info",
    ["/../outside/secret.txt", "/..\\outside", "/\\..\\outside", "/docs/\x00", "/./../outside/"],
)
def test_raw_path_info(app: TestApp, path_info: str) -> None:
    """PATH_INFO exactly as a (possibly careless) server might pass it on."""
    assert_refused(app.get("/", extra_environ={"PATH_INFO": path_info}, status="*"))


def test_absolute_paths_stay_inside(app: TestApp, root: Path) -> None:
    secret = root.parent / "outside" / "secret.txt"
    spelt = str(secret)
    for url in ("/" + spelt, "//" + spelt, quote(spelt), "/" + spelt + ".zip"):
        assert_refused(app.get(url, status="*"))
    assert_refused(app.get("/?path=" + quote(str(secret)), status="*"))
    assert_refused(app.post("/", {"path": str(secret)}, status="*"))


def test_traversal_answers_403_and_missing_answers_404(app: TestApp) -> None:
    assert app.get("/%2e%2e/outside/secret.txt", status="*").status_int == 403
    assert app.get("/escape/secret.txt", status="*").status_int == 403
    assert app.get("/.private/key.txt", status="*").status_int == 404  # invisible
    assert app.get("/nothing-here", status="*").status_int == 404


def test_pages_and_zips_never_show_what_is_outside_or_hidden(app: TestApp) -> None:
    for url in ("/", "/docs/", "/to-docs/", "/docs/b/"):
        page = app.get(url)
        assert_clean(page)
        for name in ("escape", "leak.txt", "deep-escape", ".private", ".env", "peek"):
            assert f'value="{name}"' not in page.text
    for url in ("/?download", "/docs.zip", "/to-docs.zip", "/?path=docs&path=to-docs"):
        response = app.get(url)
        assert_clean(response)
        names = check_zip(response.body).namelist()
        assert not [n for n in names if "secret" in n or "escape" in n or "private" in n]


def test_a_link_repointed_outside_is_refused_at_once(root: Path, app: TestApp) -> None:
    os.symlink("docs", root / "moving")
    assert app.get("/moving.zip").status_int == 200
    os.remove(root / "moving")
    os.symlink("../outside", root / "moving")
    for url in variants("/moving"):
        assert_refused(app.get(url, status="*"))


def test_root_given_through_a_symlink(root: Path, tmp_path: Path) -> None:
    os.symlink(root, tmp_path / "alias")
    app = TestApp(ZipApp(tmp_path / "alias"))
    assert app.get("/docs/a.txt").body == b"A" * 1000
    assert_refused(app.get("/escape/secret.txt", status="*"))
    assert_refused(app.get("/%2e%2e/outside/secret.txt", status="*"))
    assert "share/README.txt" in check_zip(app.get("/?download").body).namelist()


def test_unreadable_folder_is_403_not_a_crash(
    root: Path, app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Simulated: the suite may run as root, which can read anything.)"""
    locked = str(root / "docs" / "b")
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr("zipwsgi.paths.walk.os.scandir", scandir)
    for url in ("/docs/b/", "/docs/b.zip", "/docs.zip", "/docs/?path=b"):
        response = app.get(url, status="*")
        assert response.status_int == 403
        assert_clean(response)
        assert locked.encode() not in response.body
    page = app.get("/docs/")  # the parent still lists; b's size is unknown
    assert 'value="b">' in page.text


# --- the rules themselves, without HTTP --------------------------------------------------


@pytest.mark.parametrize("path", ["..", "a/../b", "a/..", "a\\b", "a\x00", "/../x", "x/../../y"])
def test_split_refuses(root: Path, path: str) -> None:
    with pytest.raises(OutsideRootError):
        Root(root).split(path)


@pytest.mark.parametrize(
    ("path", "parts"),
    [("", ()), ("/", ()), ("//a//b/", ("a", "b")), ("./a/./b", ("a", "b")), ("...", ("...",)),
     ("%2e%2e", ("%2e%2e",)), ("a..b/c", ("a..b", "c"))],
)
def test_split_keeps(root: Path, path: str, parts: tuple[str, ...]) -> None:
    assert Root(root, show_hidden=True).split(path) == parts


def test_hidden_rules(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Root(root).split("docs/.env")
    with pytest.raises(FileNotFoundError):
        Root(root).resolve(("peek",))  # visible name, hidden target
    assert Root(root, show_hidden=True).resolve(("peek",)) == str(root / ".private")


def test_resolve_checks_every_step(root: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "share" / "docs", tmp_path / "outside" / "back")
    with pytest.raises(OutsideRootError):
        Root(root).resolve(("escape", "back"))
    assert Root(root).resolve(("to-docs", "b")) == str(root / "docs" / "b")


def test_walk_follows_links_only_inside_the_walked_folder(root: Path) -> None:
    os.symlink("../README.txt", root / "docs" / "up.txt")  # inside the root, outside docs
    os.symlink("..", root / "docs" / "loop")
    names = [name for name, _ in Root(root).walk(str(root / "docs"), "docs")]
    assert names == ["docs", "docs/a.txt", "docs/b", "docs/b/c.txt"]
    in_root = [name for name, _ in Root(root).walk(str(root), "share")]
    assert "share/docs/up.txt" in in_root  # from the root, the same link stays inside
    assert not [n for n in in_root if "loop" in n.split("/")[-1] and n.count("loop") > 1]
