"""Options are checked once, where they are given: a typo fails at start-up, not on the
first request (issue 9: ``ZipMiddleware(app, level=42)`` used to be accepted)."""

from __future__ import annotations

import pytest

from zipwsgi import ZipMiddleware, ZipStream


def app(environ: dict, start_response) -> list[bytes]:  # pragma: no cover - never called
    start_response("200 OK", [])
    return [b""]


@pytest.mark.parametrize("level", [42, -2, 10, "fastest", 3.5, True])
def test_bad_levels_are_refused_by_every_entry_point(level: object) -> None:
    with pytest.raises(ValueError, match="level"):
        ZipMiddleware(app, level=level)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        ZipStream("deflate", level=level)  # type: ignore[arg-type]
    zs = ZipStream()
    with pytest.raises(ValueError, match="level"):
        zs.add(b"x", "x", compression="deflate", level=level)  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", ["zip", "gzip", "DEFLATE ", None, 99])
def test_bad_compressions_are_refused_by_every_entry_point(compression: object) -> None:
    with pytest.raises(ValueError, match="compression"):
        ZipMiddleware(app, compression=compression)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compression"):
        ZipStream(compression)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [None, 0, 6, 9, -1, "fast"])
def test_good_levels_pass(level: object) -> None:
    ZipMiddleware(app, compression="deflate", level=level)  # type: ignore[arg-type]
    zs = ZipStream("deflate", level=level)  # type: ignore[arg-type]
    zs.add(b"hello", "a.txt")
    assert b"".join(zs)
