"""The lazy archive stream: a plain iterable of ``bytes``, exactly sized, rangeable.

``ZipStream`` is what users build; iterating it (or a range of it) walks the
:class:`~zipwsgi.engine.plan.Plan` and pulls bytes from each entry's source only when the walk
gets there. Every iteration is an independent pass with its own ``close()``, so a WSGI
server can stream it, WebOb can range it, and a disconnect closes the one open file.
"""

from __future__ import annotations

import os
import stat
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Union

from zipwsgi.engine.compression import Level, check_level, crc32, deflate_implementation
from zipwsgi.engine.plan import Plan
from zipwsgi.engine.sources import FileSource, FolderFile, FolderFiles, Reader, Source, source_for
from zipwsgi.errors import (
    DuplicateNameError,
    SourceChangedError,
    SourceError,
    SourceUnavailableError,
)
from zipwsgi.formats.entry import DEFLATE, STORED, ArchiveLayout, Entry, EntryRecord
from zipwsgi.formats.zip.layout import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, ZipLayout
from zipwsgi.paths import is_within, normalise_name

if TYPE_CHECKING:
    from zipwsgi.engine.deflate import ParallelDeflate



def _warn(message: str, *args: object) -> None:
    """Log a warning; ``logging`` is imported on first use (it costs 1.4 MiB of RSS,
    and only folder walks that skip something ever log)."""
    import logging

    logging.getLogger(__name__).warning(message, *args)

PathLike = Union[str, "os.PathLike[str]"]

#: Bytes read from a source at a time, and the size the writer batches small records to.
DEFAULT_CHUNK_SIZE = 256 * 1024
#: The mtime of entries that bring none (bytes, iterables): 1980-01-01T00:00:00Z, the
#: zip epoch, so archives never depend on "now" and replicas serve identical bytes.
DEFAULT_MTIME = 315532800
_COMPRESSIONS = (STORED, DEFLATE)
# Folder walks stat names relative to a folder descriptor where the OS allows it.
_STAT_AT = os.stat in os.supports_dir_fd and os.scandir in os.supports_fd


class UnknownLengthError(AttributeError, TypeError):
    """``len()`` of an archive whose size cannot be known (deflate, unsized data)."""


class _LengthWhenKnown:
    """A ``__len__`` that exists only while the archive's size is known (see ArchiveStream)."""

    def __get__(self, stream: Optional["ArchiveStream"], owner: type = object) -> Any:
        if stream is None:
            return self
        size = stream.size
        if size is None:
            raise UnknownLengthError("archive size is unknown (compressed or unsized entries)")
        return lambda: size


class ArchiveStream:
    """Format-neutral core: entries, sources, the plan, passes. Subclasses pick a layout."""

    def __init__(
        self,
        layout: ArchiveLayout,
        *,
        compression: str = STORED,
        level: Level = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        mtime: Optional[float] = None,
        allow_duplicates: bool = False,
        workers: Optional[int] = None,
        precompute_crc: bool = False,
    ) -> None:
        self._layout = layout
        self.precompute_crc = precompute_crc
        self.compression = _check_compression(compression)
        self.level = check_level(level)
        self.workers = workers
        self.chunk_size = chunk_size
        self.default_mtime = DEFAULT_MTIME if mtime is None else int(mtime)
        self.allow_duplicates = allow_duplicates
        self._entries: list[Entry] = []
        # A dict, not a set: about a third of the memory per name for the same lookups.
        self._names: dict[str, None] = {}
        # Modes and layout bits repeat from entry to entry: one int object for each value
        # instead of one per entry (28 bytes each).
        self._shared_ints: dict[Any, Any] = {}
        self._plan: Optional[Plan] = None
        self._passes: weakref.WeakSet[_Pass] = weakref.WeakSet()

    # -- building ---------------------------------------------------------------------------

    def add(
        self,
        data: Any,
        arcname: str,
        *,
        size: Optional[int] = None,
        mtime: Optional[float] = None,
        mode: Optional[int] = None,
        crc: Optional[int] = None,
        compression: Optional[str] = None,
        level: Optional[int] = None,
    ) -> None:
        """Add one file entry.

        ``data`` may be bytes, str (UTF-8), a binary file object, an iterable of bytes, a
        zero-argument callable returning any of those (called only when streamed), or a
        :class:`~zipwsgi.sources.Source`. ``size`` makes the archive length exact for data
        whose length cannot be seen (iterables, callables); ``crc`` (a known CRC-32) lets
        a stored entry go without a data descriptor.
        """
        source = source_for(data, size)
        if crc is None and isinstance(data, (bytes, bytearray, memoryview, str)):
            crc = crc32(data.encode("utf-8") if isinstance(data, str) else data)
        self._append(
            normalise_name(arcname),
            source=source,
            size=source.size,
            mtime=mtime if mtime is not None else source.mtime,
            mode=mode if mode is not None else source.mode,
            crc=crc,
            compression=compression,
            level=level,
        )

    def mkdir(
        self, arcname: str, *, mtime: Optional[float] = None, mode: Optional[int] = None
    ) -> None:
        """Add a directory entry (it keeps empty folders and their permissions)."""
        self._append(
            normalise_name(arcname, is_dir=True),
            source=None,
            size=0,
            mtime=mtime,
            mode=mode,
            crc=0,
            compression=STORED,
            level=None,
            is_dir=True,
        )

    def add_path(
        self,
        path: PathLike,
        arcname: Optional[str] = None,
        *,
        recursive: bool = True,
        include_hidden: bool = True,
        mtime: Optional[float] = None,
        mode: Optional[int] = None,
        crc: Optional[int] = None,
        compression: Optional[str] = None,
        level: Optional[int] = None,
    ) -> None:
        """Add a file, or a directory with everything below it (sorted, so deterministic).

        Symlinks inside a walked directory are followed only while their target stays
        inside that directory; links pointing out of it (and broken links) are skipped.
        """
        path = os.fspath(path)
        if arcname is None:
            arcname = os.path.basename(os.path.normpath(os.path.abspath(path)))
        try:
            st = os.stat(path)
        except OSError as exc:
            raise SourceUnavailableError(f"cannot stat {path}: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode):
            arcname = normalise_name(arcname)
            root = os.path.realpath(path)
            walk = _Walk(root, recursive, include_hidden, compression, level)
            self._walk(walk, root, arcname, st)
        else:
            self.add(
                FileSource(path, st),
                arcname,
                mtime=mtime,
                mode=mode if mode is not None else st.st_mode,
                crc=crc,
                compression=compression,
                level=level,
            )

    def _walk(self, walk: "_Walk", directory: str, arcname: str, st: os.stat_result) -> None:
        # ``walk.seen`` holds the folders on the current path only: it stops symlink
        # cycles without dropping a folder that two sibling links both (legitimately) reach.
        here = (st.st_dev, st.st_ino)
        walk.seen.add(here)
        try:
            self._walk_children(walk, directory, arcname, st)
        finally:
            walk.seen.discard(here)

    def _walk_children(
        self, walk: "_Walk", directory: str, arcname: str, st: os.stat_result
    ) -> None:
        self.mkdir(arcname, mtime=st.st_mtime, mode=st.st_mode)
        # Children are stat-ed relative to an open descriptor of their folder: the kernel
        # then resolves one name instead of the whole path (a third off each stat).
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY) if _STAT_AT else None
        try:
            with os.scandir(directory if dir_fd is None else dir_fd) as it:
                children = sorted(it, key=lambda d: d.name)
            self._add_children(walk, directory, dir_fd, children, arcname)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _add_children(
        self,
        walk: "_Walk",
        directory: str,
        dir_fd: Optional[int],
        children: list[os.DirEntry],
        arcname: str,
    ) -> None:
        prefix = directory if directory.endswith(os.sep) else directory + os.sep
        folder = FolderFiles(prefix, len(arcname) + 1)
        for child in children:
            if not walk.include_hidden and child.name.startswith("."):
                continue
            target = prefix + child.name
            plain = True  # found where it is named: its path can be rebuilt from its name
            try:
                if child.is_symlink():
                    plain = False
                    link, target = target, os.path.realpath(target)
                    if not is_within(target, walk.root):
                        _warn("skipping symlink leaving %s: %s", walk.root, link)
                        continue
                    child_st = os.stat(target)
                else:
                    child_st = os.stat(child.name if dir_fd is not None else target, dir_fd=dir_fd)
            except OSError:
                _warn("skipping unreadable or broken entry: %s%s", prefix, child.name)
                continue
            child_name = f"{arcname}/{child.name}"
            if "\\" in child.name:
                child_name = normalise_name(child_name)
                plain = False
            if stat.S_ISDIR(child_st.st_mode):
                if walk.recursive and (child_st.st_dev, child_st.st_ino) not in walk.seen:
                    self._walk(walk, target, child_name, child_st)
            elif stat.S_ISREG(child_st.st_mode):
                # Straight to _append: the name is already normal (the folder's name was
                # normalised once; a directory entry's name holds no "/" or NUL), and its
                # parents are folders this walk has added, so only the name itself is new.
                self._append(
                    child_name,
                    (
                        FolderFile(folder, child_name, child_st)
                        if plain
                        else FileSource(target, child_st)
                    ),
                    child_st.st_size,
                    child_st.st_mtime,
                    child_st.st_mode,
                    None,
                    walk.compression,
                    walk.level,
                    parents_checked=True,
                )

    def _append(
        self,
        name: str,
        source: Optional[Source],
        size: Optional[int],
        mtime: Optional[float],
        mode: Optional[int],
        crc: Optional[int],
        compression: Optional[str],
        level: Optional[int],
        is_dir: bool = False,
        parents_checked: bool = False,
    ) -> None:
        if not self.allow_duplicates:
            self._check_unique(name, is_dir, parents_checked)
        if crc is not None and not 0 <= crc <= 0xFFFFFFFF:
            raise ValueError(f"crc out of range for {name!r}: {crc!r}")
        if size == 0 and crc is None:
            crc = 0  # the CRC of nothing is known up front: no data descriptor needed
        if mode is None:
            mode = DEFAULT_DIR_MODE if is_dir else DEFAULT_FILE_MODE
        compression = self.compression if compression is None else _check_compression(compression)
        entry = Entry(
            name,
            is_dir,
            source,
            size,
            int(mtime) if mtime is not None else self.default_mtime,
            self._shared_ints.setdefault(mode, mode),
            compression,
            self.level if level is None else check_level(level),
            crc,
            crc_ahead=(
                self.precompute_crc
                and crc is None
                and not is_dir
                and size is not None
                and compression == STORED
                and source is not None
                and source.reopenable
            ),
        )
        self._layout.prepare(entry)
        if type(entry.layout) is int:
            entry.layout = self._shared_ints.setdefault(entry.layout, entry.layout)
        self._entries.append(entry)
        self._names[name] = None
        self._plan = None

    def _check_unique(self, name: str, is_dir: bool, parents_checked: bool = False) -> None:
        """Refuse names that extractors would silently merge or fail on.

        Exact duplicates, a file and a folder of the same name (``a`` and ``a/``), and a
        file standing where a later name needs a folder (``a`` then ``a/b``).
        """
        names = self._names
        if name in names:
            raise DuplicateNameError(f"duplicate archive name: {name!r}")
        twin = name[:-1] if is_dir else name + "/"
        if twin in names:
            raise DuplicateNameError(f"{name!r} clashes with {twin!r}: a file and a folder")
        if parents_checked:
            return
        parent = name.rstrip("/")
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if parent in names:
                raise DuplicateNameError(f"{name!r} needs {parent!r} to be a folder, not a file")

    # -- what callers may ask before streaming --------------------------------------------

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = Plan(self._layout, self._entries)
        return self._plan

    @property
    def size(self) -> Optional[int]:
        """Exact length of the archive in bytes, or None where it cannot be known."""
        return self.plan.size

    # ``len()`` works when the size is known and raises TypeError when it is not, yet
    # ``hasattr(stream, "__len__")`` is False then: WSGI servers (waitress) call len() on
    # any body that has it, and would turn a deflate archive into a 500.
    __len__ = _LengthWhenKnown()

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    @property
    def last_modified(self) -> Optional[int]:
        """Newest entry mtime (for Last-Modified), or None for an empty archive."""
        return max((e.mtime for e in self._entries), default=None)

    def fingerprint(self) -> Optional[str]:
        """A digest that changes whenever the archive's bytes could, or None if unknowable.

        Built from every entry's name, size, mtime, mode, method and CRC, plus the source's
        identity where it has one (a file's path); data that brings neither a size nor a
        CRC has no stable identity, so no honest fingerprint exists.
        """
        import hashlib  # here, not at the top: OpenSSL adds ~4 MiB to every process

        from zipwsgi.engine.deflate import BLOCK_SIZE

        settings = sorted(vars(self._layout).items())
        digest = hashlib.sha256(
            f"{type(self._layout).__name__}{settings}{self.precompute_crc}".encode()
        )
        engines: dict[Any, str] = {}  # deflate bytes depend on the library and block size
        for entry in self._entries:
            if entry.size is None and entry.crc_given is None and not entry.is_dir:
                return None
            if not isinstance(entry.source, (FileSource, type(None))) and entry.crc_given is None:
                return None
            where = ""
            if isinstance(entry.source, FileSource):
                where = f"{entry.source.describe()}\0{entry.source.mtime_ns}"
            if entry.compression == DEFLATE and not entry.is_dir:
                if entry.level not in engines:
                    engines[entry.level] = f"{deflate_implementation(entry.level)}/{BLOCK_SIZE}"
                where += "\0" + engines[entry.level]
            digest.update(
                f"{entry.name}\0{entry.size}\0{entry.mtime}\0{entry.mode}\0{entry.compression}"
                f"\0{entry.level}\0{entry.crc_given}\0{where}\n".encode("utf-8", "surrogatepass")
            )
        return digest.hexdigest()

    # -- streaming --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        return self.app_iter_range(0, None)

    def app_iter_range(self, start: int = 0, stop: Optional[int] = None) -> "_Pass":
        """Bytes ``[start, stop)`` of the archive, lazily (WebOb's Range protocol).

        Nothing is opened until the result is iterated (WebOb calls this for HEAD too).
        For sized archives the walk starts at ``start``: files are seeked into, and the
        CRCs that records after ``start`` need are computed by reading just those entries.
        """
        size = self.size
        start = max(0, start or 0)
        if size is not None:
            stop = size if stop is None else max(start, min(stop, size))
        elif stop is not None:
            stop = max(start, stop)
        gen = _Writer(self).generate(start, stop)
        iterator = _Pass(gen)
        self._passes.add(iterator)
        return iterator

    def __bool__(self) -> bool:
        # An archive is never "falsy", even when its length is unknown (``len()`` would
        # raise): frameworks test ``if not body`` on what a view returns.
        return True

    def close_passes(self) -> None:
        """End every running pass (closing its open source) but keep the stream usable.

        For callers that peeked at an iteration they will not finish, as some frameworks
        do with the first chunk of a body.
        """
        for iterator in list(self._passes):
            iterator.close()

    def close(self) -> None:
        """Close every pass still running and every source handed over by the caller."""
        self.close_passes()
        for entry in self._entries:
            if entry.source is not None:
                entry.source.close()

    def __enter__(self) -> "ArchiveStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Walk:
    """What stays the same across one ``add_path`` folder walk."""

    __slots__ = ("root", "recursive", "include_hidden", "compression", "level", "seen")

    def __init__(
        self,
        root: str,
        recursive: bool,
        include_hidden: bool,
        compression: Optional[str],
        level: Level,
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.include_hidden = include_hidden
        self.compression = compression
        self.level = level
        self.seen: set[tuple[int, int]] = set()


class ZipStream(ArchiveStream):
    """A zip archive, streamed lazily. See the README for the whole API.

    ``compression`` is ``"stored"`` (exact size known, ranges cheap) or ``"deflate"``;
    ``charset`` controls name encoding (see :class:`~zipwsgi.formats.zip.layout.ZipLayout`).

    ``level`` (also per entry in ``add``) is a zlib level 0-9 (default 6), compressed by
    zlib-ng when installed, or ``"fast"``: isal level 3 when installed (~200 MB/s per
    core, ratio ~3 on text), else zlib-ng level 2, else zlib level 1.
    ``workers`` is how many threads compress deflated entries in parallel during each
    pass (default: the CPUs available; 0 compresses in the iterating thread). The bytes
    are the same for any number of workers; see :mod:`zipwsgi.engine.deflate`.

    ``precompute_crc=True`` reads each stored entry of unknown CRC once before writing
    its header, so no entry needs a data descriptor: Java's ``ZipInputStream`` (and any
    strict streaming reader) then reads every entry. The cost is a second read of each
    file (usually from the page cache); the size stays exact and ranges still work.
    """

    def __init__(
        self,
        compression: str = STORED,
        level: Level = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        mtime: Optional[float] = None,
        charset: Optional[str] = None,
        allow_duplicates: bool = False,
        workers: Optional[int] = None,
        precompute_crc: bool = False,
    ) -> None:
        super().__init__(
            ZipLayout(charset),
            compression=compression,
            level=level,
            chunk_size=chunk_size,
            mtime=mtime,
            allow_duplicates=allow_duplicates,
            workers=workers,
            precompute_crc=precompute_crc,
        )


class _Pass:
    """One iteration over an archive; ``close()`` ends it and closes its open source."""

    __slots__ = ("_gen", "__weakref__")

    def __init__(self, gen: Iterator[bytes]) -> None:
        self._gen = gen

    def __iter__(self) -> "_Pass":
        return self

    def __next__(self) -> bytes:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()  # type: ignore[attr-defined]


class _Batcher:
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

    def take(self) -> bytes:
        out = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces, self.size = [], 0
        return out


class _Writer:
    """Produces the bytes of one pass. Kept apart from ArchiveStream so passes share nothing
    but the entries (and the CRCs they learn, which are facts about the data)."""

    def __init__(self, stream: ArchiveStream) -> None:
        self.stream = stream
        self.layout = stream._layout
        self.entries = stream._entries
        self.chunk = stream.chunk_size

    def generate(self, start: int, stop: Optional[int]) -> Iterator[bytes]:
        plan = self.stream.plan
        if plan.size is not None:
            return self._sized(plan, start, stop if stop is not None else plan.size)
        return _slice(self._sequential(), start, stop)

    # -- sized archives: every offset is known; start anywhere ----------------------------

    def _sized(self, plan: Plan, start: int, stop: int) -> Iterator[bytes]:
        layout, entries = self.layout, self.entries
        offsets, data_offsets = plan.offsets, plan.data_offsets
        count = len(entries)
        batch = _Batcher(self.chunk)
        put = batch.put
        pos = start
        index = plan.entry_at(start) if start < plan.trailer_offset else count  # type: ignore[operator]
        small = self.chunk
        while index < count and pos < stop:
            entry = entries[index]
            offset = offsets[index]
            data_at = data_offsets[index]
            data_size = 0 if entry.is_dir else entry.size
            footer_at = data_at + data_size  # type: ignore[operator]
            index += 1
            end = offsets[index] if index < count else plan.trailer_offset
            if pos == offset and end <= stop and data_size <= small:  # type: ignore[operator]
                # The speed path for small files (most entries of most archives): a whole
                # entry in one read, its records packed straight into the batch; no
                # generator, no Reader, no record object. ~40% faster per file.
                if entry.is_dir:
                    put(layout.header(entry, offset), end - offset)  # type: ignore[operator]
                else:
                    data = self._small_data(entry)  # first: a crc_ahead header needs its CRC
                    put(layout.header(entry, offset), 0)
                    if end > footer_at:  # type: ignore[operator]
                        put(data, 0)
                        put(layout.footer(entry, entry.crc, data_size, data_size), end - offset)  # type: ignore[arg-type,operator]
                    else:
                        put(data, end - offset)  # type: ignore[operator]
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
            for chunk in layout.trailer(entries, lambda i: self._record(plan, i), trailer_at):  # type: ignore[arg-type]
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
        if entry.is_dir:
            return (plan.offsets[index], 0, 0, 0)
        crc = entry.crc_given if entry.crc_given is not None else entry.crc_found
        if crc is None:
            crc = self._crc_of(entry)
        return (plan.offsets[index], crc, entry.size, entry.size)  # type: ignore[return-value]

    def _small_data(self, entry: Entry) -> bytes:
        """All of a small entry's bytes in one read, checked against its promised size."""
        try:
            data = entry.source.read_all(entry.size)  # type: ignore[union-attr,arg-type]
        except SourceError as exc:
            raise type(exc)(f"{entry.name!r}: {exc}") from exc
        if entry.crc_found is None:
            _settle_crc(entry, crc32(data))
        return data

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
        whole = begin == 0 and end == entry.size
        checksum = whole and (entry.crc_found is None)
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
        batch = _Batcher(self.chunk)
        records: list[EntryRecord] = []
        pos = 0
        for entry in entries:
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
            # Imported on first use: its thread pool machinery costs ~1.5 MiB that
            # archives of stored entries never need.
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
    assert entry.source is not None
    try:
        return entry.source.open()
    except SourceError as exc:
        raise type(exc)(f"{entry.name!r}: {exc}") from exc


def _settle_crc(entry: Entry, crc: int) -> None:
    """Remember a computed CRC; a CRC the caller promised must match what was read."""
    if entry.crc_given is not None and entry.crc_given != crc:
        raise SourceChangedError(
            f"{entry.name!r}: CRC-32 of the data is {crc:08x}, {entry.crc_given:08x} was given"
        )
    entry.crc_found = crc


def _slice(chunks: Iterator[bytes], start: int, stop: Optional[int]) -> Iterator[bytes]:
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


def _check_compression(value: str) -> str:
    if value not in _COMPRESSIONS:
        raise ValueError(f"compression must be one of {_COMPRESSIONS}, not {value!r}")
    return value


__all__ = ["ArchiveStream", "ZipStream", "DEFAULT_CHUNK_SIZE", "DEFAULT_MTIME"]
