"""Parallel deflate for one pass: entries cut into blocks, compressed on every core.

Deflate is the slow part of a compressed archive (zlib level 6 runs at ~30 MB/s per core,
where reading and CRC-32 run at gigabytes per second), and zlib, zlib-ng and isal all
release the GIL while they compress. So a pass hands the compression to a few threads
while its own thread reads, computes CRCs and yields:

- **Blocks** (:mod:`zipwsgi.engine.blocks`): each entry's data is cut into blocks
  compressed on every core and joined into one raw deflate stream, the same bytes with
  any number of workers. The bytes do depend on the level, the block size and the
  library installed (compression.py avoids isal levels that are not reproducible).
- **Look-ahead.** Whole small and medium entries from files or bytes are read ahead (on
  the pass's own thread, one file open at a time) and queued, several small ones per
  job, so both cores stay busy across many small files. Errors met while reading ahead
  are kept and raised when the pass reaches that entry, so the bytes before it are the
  same as without look-ahead.
- **Bounded.** Input queued for compression and not yet yielded stays under
  ``2 * workers * BLOCK_SIZE`` (4 MiB with 2 workers); with the compressed copies and
  the two blocks being read, a pass holds at most about ``(4 * workers + 2) *
  BLOCK_SIZE`` (10 MiB), plus one compressor state (~300 KiB) per worker. Measured with
  tracemalloc on a 100 MiB entry: 8.2 MiB peak with 2 workers, 3.9 MiB with 0.
- **Closed.** :meth:`ParallelDeflate.close` cancels queued work and joins the threads;
  the stream calls it when a pass ends, fails, or is closed mid-way.

The cutting, the per-block compression and the job queue live in
:mod:`zipwsgi.engine.blocks`, shared with :mod:`zipwsgi.engine.gzip`, which compresses a
whole tar stream into one gzip member the same way.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Generator, Iterator, Optional, Sequence

from zipwsgi.engine.blocks import (
    BLOCK_SIZE,
    WINDOW,
    BlockPool,
    Slot,
    compress_block,
    default_workers,
    read_blocks,
)
from zipwsgi.engine.compression import FAST, CompressorFactory, crc32, deflater
from zipwsgi.engine.files import FileSource
from zipwsgi.engine.sources import BytesSource, Reader
from zipwsgi.errors import SourceChangedError
from zipwsgi.formats.entry import DEFLATE, Entry

_Opener = Callable[[Entry], Reader]


def _whole(reader: Reader, entry: Entry) -> bytes:
    """All of a sized entry's data, proven complete. For a file this is one read of
    size + 1 bytes, where reading block-wise costs two reads and two 1 MiB buffers:
    with many small files, that was the pass's own thread's largest cost."""
    try:
        return reader.read_exact(entry.size)  # type: ignore[arg-type]
    except SourceChangedError as exc:
        raise SourceChangedError(f"{entry.name!r}: {exc}") from exc


def _cut(data: bytes, size: int) -> Iterator[tuple[bytes, bytes, bool]]:
    """``(block, zdict, final)`` for data already in memory, cut as :func:`read_blocks` cuts."""
    end = len(data)
    for start in range(0, end or 1, size):
        yield data[start : start + size], data[max(0, start - WINDOW) : start], start + size >= end


class _Ahead:
    """An entry read ahead: its blocks on their way, its size and CRC, or the error met."""

    __slots__ = ("entry", "slots", "size", "crc", "error")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.slots: list[Slot] = []
        self.size = 0
        self.crc = 0
        self.error: Optional[BaseException] = None


class ParallelDeflate:
    """The deflate engine of one pass over ``entries``; see the module docstring.

    :meth:`entry` must be called for the archive's deflated entries in archive order
    (each at most once); it yields the entry's compressed bytes and returns its size and
    CRC-32.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        opener: _Opener,
        workers: Optional[int] = None,
        block_size: Optional[int] = None,
    ) -> None:
        self.entries = entries
        self.opener = opener
        self.workers = default_workers() if workers is None else max(0, workers)
        self.block_size = BLOCK_SIZE if block_size is None else block_size
        if self.block_size < 2 * WINDOW:
            raise ValueError(f"deflate block size must be at least {2 * WINDOW} bytes")
        # Input bytes queued and not yet yielded stay under this (counted in program
        # order, never by thread timing, so the decisions it drives are deterministic).
        self.budget = 2 * max(1, self.workers) * self.block_size
        self._blocks = BlockPool(self.workers)
        self._ahead: deque[_Ahead] = deque()
        self._deflaters: dict[object, CompressorFactory] = {}
        self._cursor = 0  # where to start looking for the next entry asked for
        self._next = 0  # the first entry not yet considered for look-ahead

    # -- the one public step ----------------------------------------------------------------

    def entry(self, entry: Entry) -> Generator[bytes, None, tuple[int, int]]:
        """Compressed bytes of ``entry``; returns ``(size, crc32)`` of its data."""
        index = self._locate(entry)
        try:
            if self._ahead and self._ahead[0].entry is entry:
                result = yield from self._from_ahead(index)
            else:
                self._drop_ahead()
                result = yield from self._streamed(entry, index)
        except BaseException:
            self.close()  # an error or a closed pass: nothing may keep running
            raise
        if not self._ahead:
            self._blocks.stop()  # idle threads would outlive a pass closed between entries
        return result

    def close(self) -> None:
        """Cancel queued work and join the worker threads (at most one block each)."""
        self._ahead.clear()
        self._blocks.cancel()

    # -- entries read ahead -----------------------------------------------------------------

    def _from_ahead(self, index: int) -> Generator[bytes, None, tuple[int, int]]:
        ahead = self._ahead.popleft()
        if ahead.error is not None:
            raise ahead.error
        self._top_up(index + 1)
        for slot in ahead.slots:
            yield self._blocks.take(slot)
        return ahead.size, ahead.crc

    def _top_up(self, start: int) -> None:
        """Read following entries ahead until the budget is full.

        Only once at least half the budget has drained, so reading happens in rounds and
        small entries fill whole jobs rather than trickling out one per job.
        """
        if self.workers == 0 or self._blocks.pending > self.budget // 2:
            return
        entries, i = self.entries, max(start, self._next)
        while i < len(entries) and self._blocks.pending < self.budget:
            entry = entries[i]
            if entry.is_dir or entry.compression != DEFLATE:
                i += 1  # stored entries and folders are the writer's business
                continue
            if not self._may_read_ahead(entry) or self._blocks.pending + entry.size > self.budget:  # type: ignore[operator]
                break
            self._ahead.append(self._read_ahead(entry))
            i += 1
        self._next = i
        self._blocks.flush()

    def _may_read_ahead(self, entry: Entry) -> bool:
        # Files and bytes only: opening them has no side effects and any thread may read
        # them, unlike a caller's iterator or callable (which might be single-use, or
        # expect to run when the pass reaches it). Medium sizes only: big entries stream.
        # Not at FAST: isal compresses a small file faster than a thread hand-off costs,
        # while slower levels gain from spreading small files over the cores.
        return (
            isinstance(entry.source, (FileSource, BytesSource))
            and entry.size is not None
            and entry.size <= self.budget // 2
            and entry.level != FAST
        )

    def _read_ahead(self, entry: Entry) -> _Ahead:
        ahead = _Ahead(entry)
        try:
            reader = self.opener(entry)
            try:
                data = _whole(reader, entry)
            finally:
                reader.close()
        except Exception as exc:  # raised when the pass reaches this entry
            ahead.error = exc
            return ahead
        ahead.size, ahead.crc = len(data), crc32(data)
        new = self._deflater(entry)
        for block, zdict, final in _cut(data, self.block_size):
            ahead.slots.append(self._blocks.queue(new, block, zdict, final))
        return ahead

    def _deflater(self, entry: Entry) -> CompressorFactory:
        new = self._deflaters.get(entry.level)
        if new is None:
            new = self._deflaters[entry.level] = deflater(entry.level)
        return new

    def _drop_ahead(self) -> None:
        if self._ahead:  # only if entries came out of order: start afresh, correctly
            self.close()

    # -- an entry streamed block by block ---------------------------------------------------

    def _streamed(self, entry: Entry, index: int) -> Generator[bytes, None, tuple[int, int]]:
        new = self._deflater(entry)
        mine: deque[Slot] = deque()
        crc = size = 0
        tail = b""
        self._next = max(self._next, index + 1)
        alone: Optional[bytes] = None
        reader = self.opener(entry)
        try:
            if entry.size is not None and entry.size <= self.block_size:
                blocks: Iterator[tuple[bytes, bool]] = iter([(_whole(reader, entry), True)])
            else:
                blocks = read_blocks(reader, self.block_size)
            for block, final in blocks:
                crc = crc32(block, crc)
                size += len(block)
                if final:
                    _check_size(entry, size)
                    if not mine and not self._blocks.running:
                        alone = block
                        break
                while mine and self._blocks.pending + len(block) > self.budget:
                    yield self._blocks.take(mine.popleft())
                mine.append(self._blocks.queue(new, block, tail, final, alone=True))
                tail = block[-WINDOW:]
        finally:
            reader.close()
        self._top_up(index + 1)  # keep the workers busy while this entry's tail drains
        if alone is not None:
            # A one-block entry with nothing queued before it has nothing to overlap
            # with: compressing it in this thread saves a hand-off (and starting threads).
            yield compress_block(new, alone, tail, True)
        while mine:
            yield self._blocks.take(mine.popleft())
        return size, crc

    def _locate(self, entry: Entry) -> int:
        entries, i = self.entries, self._cursor
        while i < len(entries) and entries[i] is not entry:
            i += 1
        if i == len(entries):  # asked out of order: find it anywhere
            i = next(k for k, e in enumerate(entries) if e is entry)
        self._cursor = i + 1
        return i


def _check_size(entry: Entry, size: int) -> None:
    if entry.size is not None and size != entry.size:
        raise SourceChangedError(
            f"{entry.name!r}: source gave {size} bytes, {entry.size} promised"
        )


__all__ = [
    "BLOCK_SIZE",
    "WINDOW",
    "BlockPool",
    "ParallelDeflate",
    "compress_block",
    "default_workers",
    "read_blocks",
]
