"""The writer: produces the bytes of one pass over an archive's plan.

Kept apart from the stream so passes share nothing but the entries (and the CRCs they
learn, which are facts about the data). Sized archives start anywhere (every offset is
in the plan); unsized ones are one forward walk, sliced.
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from zipwsgi.engine.compression import crc32
from zipwsgi.engine.deferred import settle
from zipwsgi.engine.plan import Plan
from zipwsgi.engine.sources import Reader, Source
from zipwsgi.errors import SourceChangedError, SourceError
from zipwsgi.formats.entry import DEFLATE, Entry, EntryRecord

if TYPE_CHECKING:
    from zipwsgi.engine.deflate import ParallelDeflate
    from zipwsgi.engine.stream import ArchiveStream


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


class Writer:
    """Produces the bytes of one pass. Kept apart from ArchiveStream so passes share nothing
    but the entries (and the CRCs they learn, which are facts about the data)."""

    def __init__(self, stream: ArchiveStream) -> None:
        self.stream = stream
        self.layout = stream._layout
        self.entries = stream._entries
        self.chunk = stream.chunk_size
        # A format that writes no CRC (tar) must not pay for one, nor read an entry that
        # a range skips just to learn it.
        self.needs_crc = stream._layout.needs_crc
        # Some files are stat-ed only now (verify_sizes="lazy"): each entry is settled
        # right before its header or its records are written (engine/deferred.py).
        self.deferred = stream._deferred

    def generate(self, start: int, stop: Optional[int]) -> Iterator[bytes]:
        plan = self.stream.plan
        if plan.size is not None:
            return self._sized(plan, start, stop if stop is not None else plan.size)
        return forward_slice(self._sequential(), start, stop)

    # -- sized archives: every offset is known; start anywhere ----------------------------

    def _sized(self, plan: Plan, start: int, stop: int) -> Iterator[bytes]:
        layout, entries = self.layout, self.entries
        offsets, data_offsets = plan.offsets, plan.data_offsets
        count = len(entries)
        batch = Batcher(self.chunk)
        put = batch.put
        put_entry = batch.put_entry
        records = layout.records
        pos = start
        index = plan.entry_at(start) if start < plan.trailer_offset else count  # type: ignore[operator]
        small = self.chunk
        deferred = self.deferred
        while index < count and pos < stop:
            entry = entries[index]
            if deferred:
                settle(entry, layout)
            offset = offsets[index]
            data_at = data_offsets[index]
            data_size = 0 if entry.is_dir else entry.size
            footer_at = data_at + data_size  # type: ignore[operator]
            index += 1
            end = offsets[index] if index < count else plan.trailer_offset
            if pos == offset and end <= stop and data_size <= small:  # type: ignore[operator]
                # The speed path for small files (most entries of most archives): a whole
                # entry in one read, its records packed straight into the batch; no
                # generator, no Reader, no record object.
                if entry.is_dir:
                    put(layout.header(entry, offset), end - offset)  # type: ignore[operator]
                else:
                    data, crc = self._small_data(entry)  # first: a crc_ahead header needs it
                    header, footer = records(entry, offset, crc)
                    put_entry((header, data, footer), end - offset)  # type: ignore[operator]
                pos = end  # type: ignore[assignment]
                if batch.size >= small:
                    yield batch.take()
                continue
            if pos < data_at:
                if entry.crc_ahead:
                    self._crc_of(entry)
                header = layout.header(entry, offset)
                piece = header[pos - offset : min(stop, data_at) - offset]
                pos += len(piece)
                ready = batch.add(piece)
                if ready:
                    yield ready
            if data_at <= pos < footer_at and pos < stop:
                upto = min(stop, footer_at)
                for piece in self._stored_data(entry, pos - data_at, upto - data_at):
                    yield from batch.push(piece)
                pos = upto
            if footer_at <= pos < end and pos < stop:  # type: ignore[operator]
                _, crc, compressed_size, size = self._record(plan, index - 1)
                footer = layout.footer(entry, crc, compressed_size, size)
                piece = footer[pos - footer_at : min(stop, end) - footer_at]  # type: ignore[type-var,operator]
                pos += len(piece)
                ready = batch.add(piece)
                if ready:
                    yield ready
        if pos < stop:
            trailer_at = plan.trailer_offset
            at = trailer_at
            # A partial, not a lambda: one Python call less per entry of the trailer.
            record_of = functools.partial(self._record, plan)
            for chunk in layout.trailer(entries, record_of, trailer_at):  # type: ignore[arg-type]
                chunk_end = at + len(chunk)  # type: ignore[operator]
                if chunk_end > pos:
                    piece = chunk[pos - at : stop - at]  # type: ignore[operator]
                    pos += len(piece)
                    ready = batch.add(piece)
                    if ready:
                        yield ready
                at = chunk_end
                if pos >= stop:
                    break
        if batch.size:
            yield batch.take()

    def _record(self, plan: Plan, index: int) -> EntryRecord:
        entry = self.entries[index]
        if self.deferred:
            settle(entry, self.layout)
        if entry.is_dir:
            return (plan.offsets[index], 0, 0, 0)
        if not self.needs_crc:
            return (plan.offsets[index], 0, entry.size, entry.size)  # type: ignore[return-value]
        crc = entry.crc_given if entry.crc_given is not None else entry.crc_found
        if crc is None:
            crc = self._crc_of(entry)
        return (plan.offsets[index], crc, entry.size, entry.size)  # type: ignore[return-value]

    def _small_data(self, entry: Entry) -> tuple[bytes, int]:
        """All of a small entry's bytes in one read, checked against its promised size,
        and their CRC (0 where the format needs none)."""
        try:
            source: Source = entry.source
            data = source.read_all(entry.size)  # type: ignore[arg-type]
        except SourceError as exc:
            raise type(exc)(f"{entry.name!r}: {exc}") from exc
        if self.needs_crc:  # every pass: an earlier pass's CRC says nothing of these bytes
            crc = crc32(data)
            if entry.crc_given is None and entry.crc_found is None:
                entry.crc_found = crc  # the first pass, nothing to compare: no call
            else:
                _settle_crc(entry, crc)
            return data, crc
        return data, 0

    def _crc_of(self, entry: Entry) -> int:
        """The entry's CRC, reading the whole entry once if no pass has computed it yet."""
        if entry.crc is None:
            for _ in self._stored_data(entry, 0, entry.size or 0, emit=False):
                pass
        return entry.crc  # type: ignore[return-value]

    def _stored_data(
        self, entry: Entry, begin: int, end: int, emit: bool = True
    ) -> Iterator[bytes]:
        """Bytes ``[begin, end)`` of a stored entry, checking the source keeps its promises."""
        # Whenever a pass reads a whole entry its bytes are checked against the CRC the
        # records promise (given by the caller, or found by an earlier pass), and a
        # mismatch raises before the footer and the central directory: a file rewritten
        # in place with the same size and mtime then cuts the download instead of
        # completing a corrupt archive. A range that covers only part of an entry cannot
        # be checked (a CRC needs every byte); the validator (fingerprint) covers that.
        whole = begin == 0 and end == entry.size
        checksum = whole and self.needs_crc
        reader = _open(entry)
        try:
            if begin:
                reader.skip(begin)
            remaining = end - begin
            crc = 0
            read, chunk_size = reader.read, self.chunk
            while remaining > 0:
                piece = read(chunk_size if remaining > chunk_size else remaining)
                if not piece:
                    raise SourceChangedError(
                        f"{entry.name!r}: source shrank: {entry.size} bytes promised, "
                        f"ended {remaining} bytes early"
                    )
                if checksum:
                    crc = crc32(piece, crc)
                remaining -= len(piece)
                if emit:
                    yield piece
            if whole:
                reader.check_end()
                if checksum:
                    _settle_crc(entry, crc)
        finally:
            reader.close()

    # -- unsized archives: one forward walk -----------------------------------------------

    def _sequential(self) -> Iterator[bytes]:
        layout, entries = self.layout, self.entries
        batch = Batcher(self.chunk)
        records: list[EntryRecord] = []
        pos = 0
        for entry in entries:
            if self.deferred:
                settle(entry, layout)
            if entry.crc_ahead:
                self._crc_of(entry)
            header = layout.header(entry, pos)
            ready = batch.add(header)
            if ready:
                yield ready
            learned = _Learned()
            if entry.is_dir:
                pieces: Iterable[bytes] = ()
            elif entry.compression == DEFLATE:
                pieces = self._deflated_data(entry, learned)
            elif entry.size is not None:
                pieces = self._stored_data(entry, 0, entry.size)
                learned.size = entry.size
            else:
                pieces = self._unsized_stored_data(entry, learned)
            written = 0
            for piece in pieces:
                written += len(piece)
                yield from batch.push(piece)
            crc = 0 if entry.is_dir else entry.crc
            ready = batch.add(layout.footer(entry, crc, written, learned.size))  # type: ignore[arg-type]
            if ready:
                yield ready
            records.append((pos, crc, written, learned.size))  # type: ignore[arg-type]
            pos += len(header) + written + layout.footer_size(entry)
        for chunk in layout.trailer(entries, records.__getitem__, pos):
            ready = batch.add(chunk)
            if ready:
                yield ready
        if batch.size:
            yield batch.take()

    def _deflated_data(self, entry: Entry, learned: "_Learned") -> Iterator[bytes]:
        # One engine per pass, shared by its deflated entries so it can read ahead across
        # them; it stops its threads when an entry fails or its generator is closed, and
        # the finalizer covers a pass dropped between two entries.
        engine: Optional["ParallelDeflate"] = self.__dict__.get("_deflate")
        if engine is None:
            # Imported on first use: its thread pool machinery costs memory that archives
            # of stored entries never need.
            from zipwsgi.engine.deflate import ParallelDeflate

            engine = self._deflate = ParallelDeflate(self.entries, _open, self.stream.workers)
            weakref.finalize(self, engine.close)
        size, crc = yield from engine.entry(entry)
        learned.size = size
        _settle_crc(entry, crc)

    def _unsized_stored_data(self, entry: Entry, learned: "_Learned") -> Iterator[bytes]:
        reader = _open(entry)
        crc = size = 0
        try:
            read, chunk_size = reader.read, self.chunk
            while True:
                piece = read(chunk_size)
                if not piece:
                    break
                crc = crc32(piece, crc)
                size += len(piece)
                yield piece
        finally:
            reader.close()
        learned.size = size
        _settle_crc(entry, crc)


class _Learned:
    """The uncompressed size a pass learns only by streaming an entry."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0


def _open(entry: Entry) -> Reader:
    source: Optional[Source] = entry.source
    assert source is not None
    try:
        return source.open()
    except SourceError as exc:
        raise type(exc)(f"{entry.name!r}: {exc}") from exc


def _settle_crc(entry: Entry, crc: int) -> None:
    """Remember a computed CRC; it must match the CRC the caller promised, and the one an
    earlier pass found (the records of this pass may already carry it)."""
    if entry.crc_given is not None and entry.crc_given != crc:
        raise SourceChangedError(
            f"{entry.name!r}: CRC-32 of the data is {crc:08x}, {entry.crc_given:08x} was given"
        )
    if entry.crc_found is not None and entry.crc_found != crc:
        raise SourceChangedError(
            f"{entry.name!r}: CRC-32 of the data is {crc:08x}, an earlier pass read "
            f"{entry.crc_found:08x}: the source changed in place"
        )
    entry.crc_found = crc


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
