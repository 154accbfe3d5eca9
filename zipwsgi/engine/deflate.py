"""Parallel deflate for one pass: entries cut into blocks, compressed on every core.

Deflate is the slow part of a compressed archive (zlib level 6 runs at ~30 MB/s per core,
where reading and CRC-32 run at gigabytes per second), and zlib, zlib-ng and isal all
release the GIL while they compress. So a pass hands the compression to a few threads
while its own thread reads, computes CRCs and yields:

- **Blocks, joined pigz-style.** An entry's data is cut into blocks of
  :data:`BLOCK_SIZE` bytes. Each block gets a fresh compressor primed (``zdict``) with
  the 32 KiB of data before it, so matches reach back across the cut as if nothing were
  cut, and ends with ``Z_SYNC_FLUSH``, which closes the deflate block on a byte boundary
  without ending the stream; the last block ends with ``Z_FINISH``. The concatenation is
  one valid raw deflate stream, and the ratio stays within 0.1% of one compressor's.
- **Deterministic.** Where blocks are cut depends only on the data (every block is
  full-sized but the last, which holds what is left: 1 byte to a whole block, or nothing
  for empty data), and which thread compresses a block never changes its bytes, so an
  archive is the same on every run, with any number of workers (0 compresses inline),
  whatever the thread timing. The bytes do depend on the level, the block size and the
  library installed (and codecs.py avoids isal levels that are not reproducible).
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

The cutting (:func:`read_blocks`), the per-block compression (:func:`compress_block`)
and the job queue (:class:`BlockPool`) are shared with :mod:`zipwsgi.engine.gzip`,
which compresses a whole tar stream into one gzip member the same way.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generator, Iterator, Optional, Sequence

from zipwsgi.engine.compression import FAST, CompressorFactory, crc32, deflater
from zipwsgi.engine.files import FileSource
from zipwsgi.engine.sources import BytesSource, Reader
from zipwsgi.errors import SourceChangedError
from zipwsgi.formats.entry import DEFLATE, Entry

#: Bytes per independently compressed block: large enough that the per-block costs (a
#: new compressor, priming it with 32 KiB, a sync marker) stay a small share of the work.
BLOCK_SIZE = 1 << 20
#: Deflate's window: the most history a block can refer back to.
WINDOW = 32 * 1024
#: Small entries read ahead are grouped into jobs of about this many input bytes: one
#: thread hand-off per job instead of per file.
_BATCH_BYTES = 256 * 1024

_Opener = Callable[[Entry], Reader]
_THREAD_NAME = "zipwsgi-deflate"


def default_workers() -> int:
    """Compression threads per pass when not told: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def compress_block(new: CompressorFactory, data: bytes, zdict: bytes, final: bool) -> bytes:
    compressor = new(zdict)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
    )


def _compress_all(pieces: list[tuple[CompressorFactory, bytes, bytes, bool]]) -> list[bytes]:
    """One job for a worker thread: several blocks, compressed in order."""
    return [compress_block(*piece) for piece in pieces]


def _read_block(reader: Reader, size: int) -> bytes:
    """Exactly ``size`` bytes, or fewer only at the end of the data (readers may return
    short reads; block boundaries must not depend on them)."""
    first = reader.read(size)
    if len(first) == size or not first:
        return first
    parts, got = [first], len(first)
    while got < size:
        piece = reader.read(size - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


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


def read_blocks(reader: Reader, size: int) -> Generator[tuple[bytes, bool], None, None]:
    """``(block, final)`` pairs: full blocks, the last one holding what is left (empty
    only when the data is)."""
    held = _read_block(reader, size)
    while True:
        if len(held) < size:
            yield held, True
            return
        following = _read_block(reader, size)
        if not following:
            yield held, True
            return
        yield held, False
        held = following


class _Job:
    """Blocks compressed together by one worker; ``results`` once the main thread has them."""

    __slots__ = ("pieces", "nbytes", "future", "results")

    def __init__(self) -> None:
        self.pieces: list[tuple[CompressorFactory, bytes, bytes, bool]] = []
        self.nbytes = 0
        self.future: Optional[Future[list[bytes]]] = None
        self.results: Optional[list[Optional[bytes]]] = None


class _Slot:
    """Where one block's compressed bytes will be: job and index, and its input size."""

    __slots__ = ("job", "index", "nbytes")

    def __init__(self, job: _Job, index: int, nbytes: int) -> None:
        self.job = job
        self.index = index
        self.nbytes = nbytes


class _Ahead:
    """An entry read ahead: its blocks on their way, its size and CRC, or the error met."""

    __slots__ = ("entry", "slots", "size", "crc", "error")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.slots: list[_Slot] = []
        self.size = 0
        self.crc = 0
        self.error: Optional[BaseException] = None


class BlockPool:
    """Blocks handed to worker threads in jobs and taken back in order.

    The one piece of machinery every parallel deflate here shares (a zip pass's
    entries, a tar.gz stream): blocks are grouped into jobs of about
    :data:`_BATCH_BYTES` (``alone`` hands a block over at once), ``pending`` counts the
    input bytes queued and not yet taken, so callers can bound their memory, and
    ``workers=0`` compresses inline, in the caller's thread.
    """

    __slots__ = ("workers", "pending", "_pool", "_batch")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pending = 0
        self._pool: Optional[ThreadPoolExecutor] = None
        self._batch = _Job()

    @property
    def running(self) -> bool:
        """True while worker threads exist (work has been handed over to them)."""
        return self._pool is not None

    def queue(
        self, new: CompressorFactory, data: bytes, zdict: bytes, final: bool, alone: bool = False
    ) -> _Slot:
        """Queue one block; :meth:`take` of the slot returns its compressed bytes."""
        job = self._batch
        slot = _Slot(job, len(job.pieces), len(data))
        job.pieces.append((new, data, zdict, final))
        job.nbytes += len(data)
        self.pending += len(data)
        if alone or job.nbytes >= _BATCH_BYTES:
            self.flush()
        return slot

    def flush(self) -> None:
        """Hand the blocks queued so far to a worker as one job."""
        job = self._batch
        if not job.pieces:
            return
        self._batch = _Job()
        if self.workers == 0:
            job.results = _compress_all(job.pieces)  # type: ignore[assignment]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, _THREAD_NAME)
            job.future = self._pool.submit(_compress_all, job.pieces)
        job.pieces = []  # the worker holds its own reference until it is done

    def take(self, slot: _Slot) -> bytes:
        """The compressed bytes of ``slot``, waiting for its job if need be."""
        job = slot.job
        if job.results is None and job.future is None:
            self.flush()  # not handed over yet (cannot happen in order; be safe)
        if job.results is None:
            job.results = job.future.result()  # type: ignore[union-attr,assignment]
            job.future = None
        out = job.results[slot.index]  # type: ignore[index]
        job.results[slot.index] = None  # type: ignore[index]  # free it as it leaves
        self.pending -= slot.nbytes
        return out  # type: ignore[return-value]

    def cancel(self) -> None:
        """Drop queued work and join the threads (each finishes at most its job)."""
        self._batch = _Job()
        self.pending = 0
        self.stop()

    def stop(self) -> None:
        """Join the worker threads; a later :meth:`queue` starts new ones."""
        pool, self._pool = self._pool, None
        if pool is not None:
            # Join the threads, unless this runs in one of them (a garbage collection
            # there may finalize a dropped pass): a thread cannot join itself.
            inside = threading.current_thread().name.startswith(_THREAD_NAME)
            pool.shutdown(wait=not inside, cancel_futures=True)


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
        mine: deque[_Slot] = deque()
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
