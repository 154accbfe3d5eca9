"""One gzip member (RFC 1952) around a stream of bytes, deflated on every core.

A ``.tar.gz`` is a tar stream inside one gzip member. The deflate body is made exactly
as a zip pass deflates a large entry (:mod:`zipwsgi.engine.deflate`, pigz-style): the
input is cut into blocks of :data:`~zipwsgi.engine.blocks.BLOCK_SIZE`, each compressed
by a worker thread with the 32 KiB before it as preset dictionary and ended with a sync
flush, the last one with ``Z_FINISH``; the pieces join into one ordinary deflate stream.
This thread cuts the blocks, computes the CRC-32 and yields the results in order.

What a caller may rely on:

- **Deterministic.** The header has no file name, no timestamp (MTIME 0), no extra
  flags, and OS byte 255 ("unknown", as Python's ``gzip`` writes: the bytes do not
  depend on the machine that made them). Block cuts depend only on the input, and which
  thread compresses a block never changes its bytes, so the member is the same for any
  number of workers, on any run. It does depend on the level and on the deflate library
  installed (see :mod:`zipwsgi.engine.compression`).
- **Bounded.** Input queued and not yet yielded stays under ``2 * workers`` blocks;
  with the compressed copies and the block being cut, about ``(4 * workers + 2)``
  blocks at worst.
- **Closed.** Closing the generator (or an error in the input) cancels queued work,
  joins the threads and closes the input iterator.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Iterator, Optional

from zipwsgi.engine.blocks import (
    BLOCK_SIZE,
    WINDOW,
    BlockPool,
    compress_block,
    default_workers,
    read_blocks,
)
from zipwsgi.engine.compression import CompressorFactory, Level, crc32, deflater
from zipwsgi.engine.sources import ChunkReader

if TYPE_CHECKING:
    from zipwsgi.engine.blocks import Slot

# ID1 ID2, CM deflate, FLG none, MTIME 0, XFL 0, OS 255 (unknown).
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_TRAILER = struct.Struct("<II")  # CRC-32 and ISIZE (the input length modulo 2**32)


def gzip_member(
    chunks: Iterator[bytes],
    level: Level = None,
    workers: Optional[int] = None,
    block_size: Optional[int] = None,
) -> Iterator[bytes]:
    """The gzip member of everything ``chunks`` yields, lazily; see the module docstring.

    ``workers`` threads compress (default: the CPUs available; 0 compresses in the
    calling thread). Nothing is read from ``chunks`` before the first ``next()``.
    """
    size = BLOCK_SIZE if block_size is None else block_size
    if size < 2 * WINDOW:
        raise ValueError(f"gzip block size must be at least {2 * WINDOW} bytes")
    threads = default_workers() if workers is None else max(0, workers)
    return _member(chunks, deflater(level), threads, size)


def _member(
    chunks: Iterator[bytes], new: CompressorFactory, workers: int, block_size: int
) -> Iterator[bytes]:
    pool = BlockPool(workers)
    budget = 2 * max(1, workers) * block_size
    reader = ChunkReader(chunks)
    queued: deque[Slot] = deque()
    crc = length = 0
    tail = b""
    try:
        yield HEADER
        for block, final in read_blocks(reader, block_size):
            crc = crc32(block, crc)
            length += len(block)
            if final and not queued:
                # Nothing to overlap with (a small archive, or the threads have caught
                # up): compressing here saves a hand-off, and starting threads at all.
                yield compress_block(new, block, tail, True)
                break
            while queued and pool.pending + len(block) > budget:
                yield pool.take(queued.popleft())
            queued.append(pool.queue(new, block, tail, final, alone=True))
            tail = block[-WINDOW:]
        while queued:
            yield pool.take(queued.popleft())
        yield _TRAILER.pack(crc & 0xFFFFFFFF, length & 0xFFFFFFFF)
    finally:
        pool.cancel()
        reader.close()


__all__ = ["HEADER", "gzip_member"]
