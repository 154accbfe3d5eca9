"""The writer: produces the bytes of one pass over an archive's plan.

Kept apart from the stream so passes share nothing but the entries (and the CRCs they
learn, which are facts about the data). Sized archives start anywhere (every offset is
in the plan); unsized ones are one forward walk, sliced.
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, cast

from zipwsgi.engine import smallfiles
from zipwsgi.engine.chunks import Batcher, forward_slice
from zipwsgi.engine.deferred import settle
from zipwsgi.engine.plan import Plan
from zipwsgi.engine.smallfiles import CentralLayout, crc32, run, settle_crc
from zipwsgi.engine.sources import Reader, Source
from zipwsgi.errors import SourceChangedError, SourceError
from zipwsgi.formats.entry import DEFLATE, Entry, EntryRecord

if TYPE_CHECKING:
    from zipwsgi.engine.deflate import ParallelDeflate
    from zipwsgi.engine.stream import ArchiveStream





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
        pos = start
        index = plan.entry_at(start) if start < plan.trailer_offset else count  # type: ignore[operator]
        trailer_at: int = plan.trailer_offset  # type: ignore[assignment]
        small = self.chunk
        deferred, needs_crc = self.deferred, self.needs_crc
        # A pass from the first byte packs each entry's central record as it writes the
        # entry (records_central), while its name, times and CRC are at hand; the trailer
        # then packs only those of entries after the first it could not (``covered``).
        # What it buys, measured: see the layouts' records_central. Capped, so a pass of
        # millions of entries holds no more than smallfiles.CENTRAL_CAP bytes of records.
        packer: Optional[CentralLayout] = None
        if hasattr(layout, "records_central"):
            packer = cast(CentralLayout, layout)
        central = bytearray()
        covered = 0 if start == 0 and packer is not None else -1
        records = packer.records_central if packer is not None else None
        plain_records = layout.records
        tail = stop >= trailer_at  # the pass goes on to the end of the archive
        while index < count and pos < stop:
            if tail and pos == offsets[index] and (covered == index or packer is None):
                # The speed path for a whole archive (or its whole tail) of small files:
                # smallfiles.run, which ends at the first entry it does not take.
                index, pos = yield from run(
                    entries, index, pos, batch, self.chunk, layout, packer, central,
                    needs_crc, deferred,
                )
                if packer is not None:
                    covered = index
                if pos != (offsets[index] if index < count else trailer_at):
                    raise RuntimeError(f"records and plan disagree at entry {index}")
                if index == count:
                    continue
                # entries[index] is not for the run (too big, or past the cap): below.
            entry = entries[index]
            if deferred:
                settle(entry, layout)
            offset = offsets[index]
            size: int = 0 if entry.is_dir else entry.size  # type: ignore[assignment]
            end = offsets[index + 1] if index + 1 < count else trailer_at
            if pos == offset and end <= stop and size <= small:
                # The speed path for small files (most entries of most archives): a whole
                # entry in one read, its records packed straight into the batch; no
                # generator, no Reader, no record object, no call per record.
                if entry.is_dir:
                    put(layout.header(entry, offset), end - offset)
                    if covered == index:
                        central += packer.central_record(entry, (offset, 0, 0, 0))  # type: ignore[union-attr]
                        covered += 1
                else:
                    try:
                        data = entry.source.read_all(size)
                    except SourceError as exc:
                        raise type(exc)(f"{entry.name!r}: {exc}") from exc
                    if needs_crc:  # every pass: an earlier pass's CRC says nothing of these
                        crc = crc32(data)
                        if entry.crc_given is None and entry.crc_found is None:
                            entry.crc_found = crc  # the first pass, nothing to compare
                        else:
                            settle_crc(entry, crc)
                    else:
                        crc = 0
                    if covered == index and len(central) < smallfiles.CENTRAL_CAP:
                        header, footer = records(entry, offset, crc, central)  # type: ignore[misc]
                        covered += 1
                    else:
                        header, footer = plain_records(entry, offset, crc)
                    batch.pieces += (header, data, footer)
                    batch.size += end - offset
                index += 1
                pos = end
                if batch.size >= small:
                    yield batch.take()
                continue
            whole = pos == offset and end <= stop
            data_at = data_offsets[index]
            footer_at = data_at + size
            index += 1
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
            if footer_at <= pos < end and pos < stop:
                record = self._record(plan, index - 1)
                footer = layout.footer(entry, record[1], record[2], record[3])
                piece = footer[pos - footer_at : min(stop, end) - footer_at]
                pos += len(piece)
                ready = batch.add(piece)
                if ready:
                    yield ready
            if whole and covered == index - 1 and len(central) < smallfiles.CENTRAL_CAP:
                central += packer.central_record(entry, self._record(plan, index - 1))  # type: ignore[union-attr]
                covered += 1
        if pos < stop:
            at = trailer_at
            # A partial, not a lambda: one Python call less per entry of the trailer.
            record_of = functools.partial(self._record, plan)
            if covered > 0:
                trailer = packer.trailer(entries, record_of, at, central, covered)  # type: ignore[union-attr]
            else:
                trailer = layout.trailer(entries, record_of, at)
            del central
            for chunk in trailer:
                chunk_end = at + len(chunk)
                if chunk_end > pos:
                    piece = chunk[pos - at : stop - at]
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
                    settle_crc(entry, crc)
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
        settle_crc(entry, crc)

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
        settle_crc(entry, crc)


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


