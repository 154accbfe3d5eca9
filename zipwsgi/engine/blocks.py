"""Block compression on every core, pigz-style: the machinery zip's deflate and tar.gz share.

- **Blocks, joined.** Data is cut into blocks of :data:`BLOCK_SIZE` bytes. Each block
  gets a fresh compressor primed (``zdict``) with the 32 KiB of data before it, so
  matches reach back across the cut as if nothing were cut, and ends with
  ``Z_SYNC_FLUSH``, which closes the deflate block on a byte boundary without ending the
  stream; the last block ends with ``Z_FINISH``. The concatenation is one valid raw
  deflate stream, at the ratio of one compressor within a fraction of a percent.
- **Deterministic.** Where blocks are cut depends only on the data (every block is
  full-sized but the last), and which thread compresses a block never changes its bytes,
  so the output is the same on every run with any number of workers (0 compresses
  inline), whatever the thread timing.
- **Bounded and closed.** :class:`BlockPool` counts the input queued and not yet taken
  (callers bound their memory with it) and joins its threads on :meth:`BlockPool.stop`.
"""

from __future__ import annotations

import os
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generator, Optional

from zipwsgi.engine.compression import CompressorFactory
from zipwsgi.engine.sources import Reader

__all__ = ["BLOCK_SIZE", "WINDOW", "BlockPool", "Slot", "compress_block", "default_workers",
           "read_blocks"]

#: Bytes per independently compressed block: large enough that the per-block costs (a
#: new compressor, priming it with 32 KiB, a sync marker) stay a small share of the work.
BLOCK_SIZE = 1 << 20
#: Deflate's window: the most history a block can refer back to.
WINDOW = 32 * 1024
#: Small entries read ahead are grouped into jobs of about this many input bytes: one
#: thread hand-off per job instead of per file.
_BATCH_BYTES = 256 * 1024
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


class Slot:
    """Where one block's compressed bytes will be: job and index, and its input size."""

    __slots__ = ("job", "index", "nbytes")

    def __init__(self, job: _Job, index: int, nbytes: int) -> None:
        self.job = job
        self.index = index
        self.nbytes = nbytes


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
    ) -> Slot:
        """Queue one block; :meth:`take` of the slot returns its compressed bytes."""
        job = self._batch
        slot = Slot(job, len(job.pieces), len(data))
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

    def take(self, slot: Slot) -> bytes:
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
