"""The plan adds up what a layout says, and nothing else: a fake layout with fixed header,
footer and trailer sizes makes every offset computable by hand."""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence

import pytest

from zipwsgi.engine.plan import Plan
from zipwsgi.formats.entry import DEFLATE, STORED, Entry, EntryRecord

HEADER = 10
FOOTER = 3
SHARE = 7  # what each entry adds to the trailer
END = 5  # the trailer's own fixed part


class FixedLayout:
    """An :class:`ArchiveLayout` whose records have fixed lengths; records what it is asked."""

    content_type = "application/x-test"
    extension = ".test"
    needs_crc = False
    needs_sizes = False

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.trailer_asked: list[tuple[int, int, int]] = []

    def prepare(self, entry: Entry) -> None:
        entry.layout = None

    def planned_sizes(self, entry: Entry, offset: int) -> tuple[int, int, int]:
        self.asked.append((entry.name, offset))
        return HEADER, FOOTER, SHARE

    def header(self, entry: Entry, offset: int) -> bytes:
        return b"H" * HEADER

    def footer(self, entry: Entry, crc: int, compressed_size: int, size: int) -> bytes:
        return b"F" * FOOTER

    def footer_size(self, entry: Entry) -> int:
        return FOOTER

    def trailer(
        self, entries: Sequence[Entry], record_of: Callable[[int], EntryRecord], offset: int
    ) -> Iterator[bytes]:
        yield b"T" * (SHARE * len(entries) + END)

    def trailer_size(self, count: int, offset: int, shares: int) -> int:
        self.trailer_asked.append((count, offset, shares))
        return shares + END


def entry(name: str, size: Optional[int], *, is_dir: bool = False,
          compression: str = STORED) -> Entry:
    return Entry(name, is_dir, None, size, 0, 0o644, compression, None, None)


def test_offsets_and_size_add_up() -> None:
    layout = FixedLayout()
    entries = [entry("a", 5), entry("b", 0), entry("c", 100)]
    plan = Plan(layout, entries)
    assert list(plan.offsets) == [0, 18, 31]  # 0 + 10 + 5 + 3; 18 + 10 + 0 + 3
    assert list(plan.data_offsets) == [10, 28, 41]
    assert plan.trailer_offset == 31 + 10 + 100 + 3
    assert plan.size == 144 + 3 * SHARE + END
    assert plan.size == sum(HEADER + e.size + FOOTER for e in entries) + 3 * SHARE + END
    # The layout is asked at the offset each entry really starts at, and the trailer
    # gets the count, its own offset and the summed shares.
    assert layout.asked == [("a", 0), ("b", 18), ("c", 31)]
    assert layout.trailer_asked == [(3, 144, 3 * SHARE)]


def test_an_empty_plan_is_just_the_trailer() -> None:
    plan = Plan(FixedLayout(), [])
    assert list(plan.offsets) == []
    assert plan.trailer_offset == 0
    assert plan.size == END


def test_directories_contribute_no_data() -> None:
    """A folder's header and footer count; a size set on it does not."""
    layout = FixedLayout()
    plan = Plan(layout, [entry("d/", 123, is_dir=True), entry("d/f", 4), entry("e/", None,
                                                                             is_dir=True)])
    assert list(plan.offsets) == [0, 13, 30]
    assert list(plan.data_offsets) == [10, 23, 40]
    assert plan.trailer_offset == 43
    assert plan.size == 43 + 3 * SHARE + END


@pytest.mark.parametrize(
    "unpredictable",
    [entry("x", None), entry("x", 50, compression=DEFLATE), entry("x", None,
                                                                  compression=DEFLATE)],
    ids=["unsized", "deflate", "unsized-deflate"],
)
def test_an_unpredictable_entry_stops_offsets_and_size(unpredictable: Entry) -> None:
    layout = FixedLayout()
    plan = Plan(layout, [entry("a", 5), entry("b", 6), unpredictable, entry("c", 7)])
    assert list(plan.offsets) == [0, 18]
    assert list(plan.data_offsets) == [10, 28]
    assert plan.size is None
    assert plan.trailer_offset is None
    # Nothing after it is planned: its offset depends on bytes not yet written.
    assert [name for name, _ in layout.asked] == ["a", "b"]
    assert layout.trailer_asked == []


def test_an_unpredictable_first_entry_plans_nothing() -> None:
    plan = Plan(FixedLayout(), [entry("x", 1, compression=DEFLATE), entry("a", 5)])
    assert list(plan.offsets) == []
    assert plan.size is None
    assert plan.entry_at(0) == 0


def test_entry_at_every_byte() -> None:
    sizes = [0, 1, 5, 0, 2]
    entries = [entry(f"e{i}", size) for i, size in enumerate(sizes)]
    entries.insert(2, entry("dir/", None, is_dir=True))
    plan = Plan(FixedLayout(), entries)
    assert plan.size is not None and plan.trailer_offset is not None
    owner = []  # who holds each byte, written out from the lengths
    for index, e in enumerate(entries):
        owner += [index] * (HEADER + (0 if e.is_dir else e.size) + FOOTER)
    assert len(owner) == plan.trailer_offset
    assert [plan.entry_at(pos) for pos in range(plan.trailer_offset)] == owner
    # Bytes of the trailer belong to the last entry (a range there starts after it).
    assert {plan.entry_at(pos) for pos in range(plan.trailer_offset, plan.size)} == {
        len(entries) - 1
    }
