"""The chunks a pass hands out: the pass object itself, the batching of small pieces into
chunks of about ``chunk_size``, and slicing a forward-only stream. Format-neutral."""

from __future__ import annotations

from typing import Iterator, Optional


class Pass:
    """One iteration over an archive; ``close()`` ends it and closes its open source."""

    __slots__ = ("_gen", "__weakref__")

    def __init__(self, gen: Iterator[bytes]) -> None:
        self._gen = gen

    def __iter__(self) -> "Pass":
        return self

    def __next__(self) -> bytes:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()  # type: ignore[attr-defined]


class Batcher:
    """Joins small pieces into chunks of about ``limit`` bytes: fewer, larger writes."""

    __slots__ = ("limit", "pieces", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, piece: bytes) -> Optional[bytes]:
        """Queue ``piece``; return a chunk when one is ready to leave."""
        self.pieces.append(piece)
        self.size += len(piece)
        if self.size >= self.limit:
            return self.take()
        return None

    def push(self, piece: bytes) -> tuple[bytes, ...]:
        """Queue ``piece`` and return what may leave now: a big piece goes out as it is
        (after what was queued before it), small ones wait to be joined."""
        if len(piece) >= self.limit // 2:
            return (self.take(), piece) if self.size else (piece,)
        ready = self.add(piece)
        return (ready,) if ready else ()

    def put(self, piece: bytes, length: int) -> None:
        """Queue ``piece`` without taking, counting ``length`` bytes (the sized writer
        knows an entry's length from the plan and counts it once, with its last piece).
        The caller checks ``size`` afterwards."""
        self.pieces.append(piece)
        self.size += length

    def put_entry(self, pieces: tuple[bytes, bytes, bytes], length: int) -> None:
        """:meth:`put` of a small entry's header, data and footer in one call."""
        self.pieces += pieces
        self.size += length

    def take(self) -> bytes:
        out = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces, self.size = [], 0
        return out


def forward_slice(chunks: Iterator[bytes], start: int, stop: Optional[int]) -> Iterator[bytes]:
    """Bytes [start, stop) of a forward-only stream (unsized archives cannot seek)."""
    if start == 0 and stop is None:
        yield from chunks
        return
    pos = 0
    try:
        for chunk in chunks:
            end = pos + len(chunk)
            if end > start:
                piece = chunk[max(0, start - pos) : None if stop is None else stop - pos]
                if piece:
                    yield piece
            pos = end
            if stop is not None and pos >= stop:
                break
    finally:
        chunks.close()  # type: ignore[attr-defined]
