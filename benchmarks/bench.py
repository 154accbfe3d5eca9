"""Side-by-side benchmark: zipwsgi against other streaming zip writers and the I/O limits.

Why this exists: "fast" means nothing without peers and a ceiling. Every case builds the
same archive from the same files with zipwsgi, zipstream-ng, stream-zip and the standard
library's ``zipfile`` (writing to an unseekable sink, as a web response would), and runs
the limits next to them: a bare read + CRC-32 loop (zlib, zlib-ng, isal), read + CRC-32 +
deflate for compressed cases, and ``cat file > /dev/null`` for single files. The tar cases
(``tar-*``, ``targz-*``) build the same tar or tar.gz with zipwsgi's TarStream and
Python's ``tarfile`` (``w|``/``w|gz`` into the same unseekable sink), beside GNU tar in C
(``tar -cf - DIR | wc -c``, ``tar -czf -``, ``tar -cf - | pigz``). The ratio
column says how close zipwsgi gets to each of them.

Usage::

    python benchmarks/bench.py                  # all default cases, 3 rounds
    python benchmarks/bench.py --quick          # small data, 1 round, archives verified
    python benchmarks/bench.py --cases big-stored,text-deflate --rounds 5
    python benchmarks/bench.py --huge           # add the 1 GiB single-file case
    python benchmarks/bench.py --verify         # check every archive opens before timing
    python benchmarks/bench.py --markdown       # also print a README-ready table

How it measures, and why:

* Input data is generated once, deterministically, under ``benchmarks/data/`` (gitignored)
  and regenerated only when missing or of the wrong size, so runs on two machines or two
  commits read the same bytes.
* Each run is a fresh child process (``bench.py --run-one CASE IMPL``) so one library's
  memory or imports cannot leak into another's figures. The child times only the archive
  work (not interpreter start-up or imports) and reports its own peak RSS. So that this
  figure is the library's, the child runs bytecode the parent compiled once (compiling
  this file would cost ~3 MiB), the harness imports almost nothing at module level and
  parses a child's arguments without ``argparse``; what remains, the RSS of an idle
  child, is printed next to the tables.
* The page cache is warmed before each case and implementations alternate within every
  round (the starting one rotates), so neither disk nor ordering favours anyone.
* The archive goes to a sink that counts (and with ``--hash`` hashes) and discards it.
* zipwsgi rows are skipped, not failed, while ``zipwsgi.ZipStream`` cannot be imported.
"""

from __future__ import annotations

# Module level imports only what every child needs and is cheap; the rest is imported where
# used, so a child's peak RSS is the library's, not the harness's (was ~9 MiB of imports).
import importlib
import json
import os
import random
import resource
import sys
import time
import zlib
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple

if TYPE_CHECKING:
    import argparse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA_DIR = os.path.join(HERE, "data")

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000  # throughput is reported in MB/s (10**6 bytes), like curl and dd do

READ_SIZE = 64 * KiB  # what zipstream-ng and stream-zip read per call by default
# The limits are meant as a ceiling, so they read with the fastest buffer size measured
# (64 KiB-1 MiB tried): big enough to amortise system calls, small enough that the CRC
# pass finds the bytes still in the CPU's L2 cache (1 MiB was 15% slower with isal).
LIMIT_READ_SIZE = 256 * KiB
DEFLATE_LEVEL = 6  # zlib's default, the level every peer is asked for in deflate cases
ISAL_LEVEL = 3  # isal's strongest level; it has no level 6
ZIP32_LIMIT = 0xFFFFFFFF


# --------------------------------------------------------------------------------------
# Input data
# --------------------------------------------------------------------------------------


class Dataset(NamedTuple):
    """Deterministic input: one file ("random" or "text") or a tree of small files.

    ``size`` is bytes for a single file and the number of files for a tree.
    """

    name: str
    kind: str
    size: int

    @property
    def path(self) -> str:
        return os.path.join(DATA_DIR, self.name)

    @property
    def is_tree(self) -> bool:
        return self.kind == "tree"

    def files(self) -> list[tuple[str, str]]:
        """(path on disk, name in archive), walking the disk so the walk's cost is real."""
        if not self.is_tree:
            return [(self.path, self.name)]
        return list(walk_files(self.path, self.name))

    def payload_bytes(self) -> int:
        """Total bytes of input, the numerator of every MB/s figure."""
        if not self.is_tree:
            return self.size
        return sum(size for _, size in tree_layout(self.name, self.size))

    def describe(self) -> str:
        if self.is_tree:
            mib = self.payload_bytes() / MiB
            return f"{self.size:,} files of 1-8 KiB ({mib:.1f} MiB)"
        return f"1 {self.kind} file of {self.size / MiB:,.0f} MiB"


def walk_files(root: str, arcroot: str) -> Iterator[tuple[str, str]]:
    """Files under ``root`` in a stable (sorted) order, with their archive names."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        prefix = arcroot if rel == "." else f"{arcroot}/{rel.replace(os.sep, '/')}"
        for filename in sorted(filenames):
            yield os.path.join(dirpath, filename), f"{prefix}/{filename}"


def tree_layout(name: str, count: int) -> list[tuple[str, int]]:
    """Relative paths and sizes of a small-file tree: 100 files a folder, 1-8 KiB each."""
    rng = random.Random(f"zipwsgi-bench:{name}")
    return [
        (os.path.join(f"d{i // 100:03d}", f"f{i:05d}.bin"), rng.randint(1 * KiB, 8 * KiB))
        for i in range(count)
    ]


def random_block(label: str, size: int) -> bytes:
    """Incompressible but reproducible bytes (SHAKE-128 runs at roughly 500 MiB/s)."""
    import hashlib

    return hashlib.shake_128(f"zipwsgi-bench:{label}".encode()).digest(size)


# A pronounceable made-up vocabulary, so text compresses like prose and logs do.
_SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
_LEVELS = ["INFO"] * 8 + ["DEBUG"] * 4 + ["WARN"] * 2 + ["ERROR"]
_METHODS = ["GET"] * 6 + ["POST"] * 2 + ["PUT", "DELETE"]
_STATUSES = (200, 200, 200, 200, 201, 304, 404, 500)


class LogWriter:
    """Generates application-log-like text that zlib level 6 shrinks about 3.5 times.

    Real logs mix repeated structure (timestamps, levels, module names, Zipf-distributed
    words) with noise (ids, sizes, latencies); the proportions here were tuned for the
    ratio. Everything comes from one seeded ``random.Random``, so the output is fixed.
    """

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        self.vocab = [
            "".join(self.rng.choices(_SYLLABLES, k=self.rng.choice((1, 2, 2, 2, 3, 3, 4))))
            for _ in range(3000)
        ]
        self.cum_weights = []
        total = 0.0
        for rank in range(len(self.vocab)):
            total += 1 / (rank + 1)
            self.cum_weights.append(total)
        self.modules = [f"{a}.{b}" for a, b in zip(self.vocab[:40], self.vocab[40:80])]
        self.paths = self.vocab[:200]
        self.clock = 1_700_000_000.0
        self._second = -1
        self._stamp = ""

    def lines(self, count: int) -> str:
        return "".join(self._line() for _ in range(count))

    def _line(self) -> str:
        r = self.rng
        self.clock += r.expovariate(50)
        second = int(self.clock)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = int(self.clock * 1000) % 1000
        head = f"{self._stamp}.{millis:03d}Z {r.choice(_LEVELS):5} [{r.choice(self.modules)}] "
        words = r.choices(self.vocab, cum_weights=self.cum_weights, k=r.randint(3, 14))
        if r.random() < 0.4:
            return (
                f"{head}{r.choice(_METHODS)} /api/v1/{r.choice(self.paths)}/{r.randrange(10000)}"
                f" {r.choice(_STATUSES)} {r.randrange(50000)}B {r.randrange(3000) / 10}ms"
                f" req={r.getrandbits(48):012x} {' '.join(words[:4])}\n"
            )
        return f"{head}{' '.join(words).capitalize()}.\n"


def _write_random(path: str, size: int, label: str) -> None:
    with open(path, "wb") as f:
        for index, offset in enumerate(range(0, size, 4 * MiB)):
            f.write(random_block(f"{label}:{index}", min(4 * MiB, size - offset)))


def _write_text(path: str, size: int, label: str) -> None:
    writer = LogWriter(f"zipwsgi-bench:{label}")
    with open(path, "wb") as f:
        written = 0
        while written < size:
            written += f.write(writer.lines(20_000).encode())
        f.truncate(size)
    with open(path, "rb") as f:
        sample = f.read(16 * MiB)
    ratio = len(sample) / len(zlib.compress(sample, DEFLATE_LEVEL))
    print(f"  {label}: zlib level {DEFLATE_LEVEL} ratio {ratio:.2f} (first 16 MiB)", flush=True)


def _write_tree(path: str, dataset: Dataset) -> None:
    for rel, size in tree_layout(dataset.name, dataset.size):
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(random_block(f"{dataset.name}/{rel}", size))


def dataset_ok(dataset: Dataset) -> bool:
    """True when the data is on disk with the expected size(s), so it can be reused."""
    if not dataset.is_tree:
        return os.path.isfile(dataset.path) and os.path.getsize(dataset.path) == dataset.size
    if not os.path.isdir(dataset.path):
        return False
    expected = {
        os.path.join(dataset.path, rel): size
        for rel, size in tree_layout(dataset.name, dataset.size)
    }
    found = {path: os.path.getsize(path) for path, _ in walk_files(dataset.path, "")}
    return found == expected


def ensure_dataset(dataset: Dataset) -> None:
    """Create the data if missing or wrong, writing to a temporary name first.

    The rename at the end means an interrupted run never leaves behind something that
    looks complete.
    """
    if dataset_ok(dataset):
        return
    print(f"generating {dataset.path} ...", flush=True)
    started = time.perf_counter()
    os.makedirs(DATA_DIR, exist_ok=True)
    partial = dataset.path + ".partial"
    _remove(partial)
    if dataset.kind == "random":
        _write_random(partial, dataset.size, dataset.name)
    elif dataset.kind == "text":
        _write_text(partial, dataset.size, dataset.name)
    else:
        _write_tree(partial, dataset)
    _remove(dataset.path)
    os.replace(partial, dataset.path)
    os.sync()  # so write-back of fresh data does not run during the first timings
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)


def _remove(path: str) -> None:
    """Delete a generated file or folder; refuses anything outside the data folder."""
    if os.path.dirname(os.path.abspath(path)) != DATA_DIR:
        raise ValueError(f"refusing to remove {path}: not directly under {DATA_DIR}")
    if os.path.isdir(path):
        import shutil

        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def warm_page_cache(dataset: Dataset) -> None:
    """Read every input byte once so all implementations start from a warm cache."""
    buffer = bytearray(LIMIT_READ_SIZE)
    for path, _ in dataset.files():
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


class Case(NamedTuple):
    name: str
    dataset: Dataset
    compression: str  # zip: "stored" or "deflate"; tar: "tar" or "tar.gz"

    @property
    def is_tar(self) -> bool:
        return self.compression in ("tar", "tar.gz")


def all_cases(quick: bool) -> dict[str, Case]:
    """Every case by name; ``--quick`` keeps the names but shrinks the data."""
    if quick:
        big = Dataset("big-32M.bin", "random", 32 * MiB)
        huge = Dataset("huge-64M.bin", "random", 64 * MiB)
        text = Dataset("text-8M.log", "text", 8 * MiB)
        small10k = Dataset("small-500", "tree", 500)
        small20k = Dataset("small-1000", "tree", 1000)
    else:
        big = Dataset("big-512M.bin", "random", 512 * MiB)
        huge = Dataset("huge-1G.bin", "random", 1 * GiB)
        text = Dataset("text-100M.log", "text", 100 * MiB)
        small10k = Dataset("small-10k", "tree", 10_000)
        small20k = Dataset("small-20k", "tree", 20_000)
    cases = [
        Case("big-stored", big, "stored"),
        Case("text-deflate", text, "deflate"),
        Case("small10k-stored", small10k, "stored"),
        Case("small20k-stored", small20k, "stored"),
        Case("huge-stored", huge, "stored"),
        Case("tar-small10k", small10k, "tar"),
        Case("tar-big", big, "tar"),
        Case("targz-text", text, "tar.gz"),
    ]
    return {case.name: case for case in cases}


TAR_CASES = ["tar-small10k", "tar-big", "targz-text"]
DEFAULT_CASES = ["big-stored", "text-deflate", "small10k-stored", "small20k-stored", *TAR_CASES]


# --------------------------------------------------------------------------------------
# The sink every implementation writes to
# --------------------------------------------------------------------------------------


class Sink:
    """A write-only, unseekable destination that counts bytes and discards them.

    Optionally hashes them (to compare runs) or keeps them in a file (to verify the
    archive). It has no ``seek``/``tell``, so ``zipfile`` streams as it would into an
    HTTP response.
    """

    def __init__(self, hash_output: bool = False, output: str | None = None) -> None:
        self.count = 0
        self.digest = None
        if hash_output:
            import hashlib  # only with --hash, so plain runs do not pay for it

            self.digest = hashlib.sha256()
        self.file = open(output, "wb") if output else None  # closed in close()

    def write(self, data: bytes) -> int:
        self.count += len(data)
        if self.digest is not None:
            self.digest.update(data)
        if self.file is not None:
            self.file.write(data)
        return len(data)

    def write_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# --------------------------------------------------------------------------------------
# Archive writers. Each builds the whole archive from the case's input into the sink and
# may return a dict of extra facts for the report. Imports happen inside, so a child
# process loads only the library it measures (and the timer excludes import cost).
# --------------------------------------------------------------------------------------


def build_zipwsgi(case: Case):
    """A zipwsgi ZipStream (TarStream for tar cases), written against the public API."""
    if case.is_tar:
        from zipwsgi import TarStream

        if case.compression == "tar.gz":
            ts = TarStream(compression="gzip", level=DEFLATE_LEVEL)
        else:
            ts = TarStream()
        ts.add_path(case.dataset.path, case.dataset.name)
        return ts
    from zipwsgi import ZipStream

    if case.compression == "deflate":
        zs = ZipStream(compression="deflate", level=DEFLATE_LEVEL)
    else:
        zs = ZipStream(compression="stored")
    zs.add_path(case.dataset.path, case.dataset.name)
    return zs


def run_zipwsgi(case: Case, sink: Sink) -> dict:
    zs = build_zipwsgi(case)
    try:
        declared = zs.size
        sink.write_all(zs)
    finally:
        zs.close()
    return {"declared_size": declared}


def build_zipstream_ng(case: Case):
    """A zipstream-ng ZipStream; sized when stored, so it can announce its length too."""
    import zipstream

    if case.compression == "deflate":
        zs = zipstream.ZipStream(
            compress_type=zipstream.ZIP_DEFLATED, compress_level=DEFLATE_LEVEL
        )
    else:
        zs = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    zs.add_path(case.dataset.path, case.dataset.name)
    return zs


def run_zipstream_ng(case: Case, sink: Sink) -> dict:
    zs = build_zipstream_ng(case)
    declared = len(zs) if zs.sized else None
    sink.write_all(zs)
    return {"declared_size": declared}


def read_chunks(path: str, size: int = READ_SIZE) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def file_crc32(path: str) -> int:
    crc = 0
    for chunk in read_chunks(path, LIMIT_READ_SIZE):
        crc = zlib.crc32(chunk, crc)
    return crc


def stream_zip_members(case: Case, two_pass: bool) -> Iterator[tuple]:
    """stream-zip's member tuples: (name, modified_at, mode, method, chunks).

    Stored members default to ``NO_COMPRESSION_32/64``, which buffer each whole file in
    memory to learn its CRC first. ``two_pass`` instead computes the CRC with a first read
    and passes it (``NO_COMPRESSION_32(size, crc)``), streaming in constant memory at the
    cost of reading every file twice.
    """
    import datetime as dt

    import stream_zip

    for path, arcname in case.dataset.files():
        st = os.stat(path)
        modified_at = dt.datetime.fromtimestamp(st.st_mtime)
        small = st.st_size < ZIP32_LIMIT
        if case.compression == "deflate":
            method = stream_zip.ZIP_32 if small else stream_zip.ZIP_64
        else:
            method = stream_zip.NO_COMPRESSION_32 if small else stream_zip.NO_COMPRESSION_64
            if two_pass:
                method = method(st.st_size, file_crc32(path))
        yield arcname, modified_at, st.st_mode, method, read_chunks(path)


def run_stream_zip(case: Case, sink: Sink, two_pass: bool = False) -> dict:
    from stream_zip import stream_zip

    def compressobj():
        return zlib.compressobj(level=DEFLATE_LEVEL, wbits=-zlib.MAX_WBITS)

    sink.write_all(stream_zip(stream_zip_members(case, two_pass), get_compressobj=compressobj))
    return {}


def run_stream_zip_2pass(case: Case, sink: Sink) -> dict:
    return run_stream_zip(case, sink, two_pass=True)


def run_zipfile(case: Case, sink: Sink) -> dict:
    """The standard library, into an unseekable sink (so with data descriptors)."""
    import zipfile

    if case.compression == "deflate":
        options = {"compression": zipfile.ZIP_DEFLATED, "compresslevel": DEFLATE_LEVEL}
    else:
        options = {"compression": zipfile.ZIP_STORED}
    with zipfile.ZipFile(sink, "w", **options) as zf:
        for path, arcname in case.dataset.files():
            zf.write(path, arcname)
    return {}


def run_tarfile(case: Case, sink: Sink) -> dict:
    """The standard library's tarfile in stream mode (``w|``, ``w|gz``) into an
    unseekable sink: what a Python user can stream today. Its defaults are kept
    (``add`` of the folder, recursive; gzip at tarfile's fixed level 9 before 3.12)."""
    import tarfile

    mode = "w|gz" if case.compression == "tar.gz" else "w|"
    with tarfile.open(fileobj=sink, mode=mode) as archive:
        archive.add(case.dataset.path, case.dataset.name)
    return {}


def run_gnu_tar(case: Case, sink: Sink, compressor: str = "") -> dict:
    """GNU tar in C: ``tar -cf - DIR | wc -c`` (``-czf``: gzip -6; ``pigz``: piped
    through ``pigz -6`` on every core).

    Its output always goes into a pipe: GNU tar skips reading the files when it writes
    to ``/dev/null`` itself. ``wc -c`` reads the pipe as ``cat > /dev/null`` would and
    also says how long the archive was.
    """
    import shutil
    import subprocess

    if compressor == "pigz" and shutil.which("pigz") is None:
        return {"skipped": "pigz is not installed"}
    flags = "-czf" if compressor == "gzip" else "-cf"
    tar = subprocess.Popen(["tar", flags, "-", "-C", DATA_DIR, case.dataset.name],
                           stdout=subprocess.PIPE)
    stages = [tar]
    if compressor == "pigz":
        stages.append(subprocess.Popen(["pigz", f"-{DEFLATE_LEVEL}"], stdin=tar.stdout,
                                       stdout=subprocess.PIPE))
    counter = subprocess.Popen(["wc", "-c"], stdin=stages[-1].stdout, stdout=subprocess.PIPE)
    for stage in stages:
        stage.stdout.close()  # only the next stage holds the pipe
    counted = counter.communicate()[0]
    codes = [stage.wait() for stage in stages] + [counter.returncode]
    if any(codes):
        raise RuntimeError(f"pipeline exited with {codes}")
    return {"output_bytes": int(counted), "maxrss_kib": None}


# --------------------------------------------------------------------------------------
# Limits: what the archive writers cannot beat, because they must do at least this much.
# --------------------------------------------------------------------------------------


def crc32_function(backend: str) -> Callable[[bytes, int], int]:
    if backend == "zlib-ng":
        from zlib_ng import zlib_ng

        return zlib_ng.crc32
    if backend == "isal":
        from isal import isal_zlib

        return isal_zlib.crc32
    return zlib.crc32


def compressobj_factory(backend: str) -> Callable[[], object]:
    """Raw-deflate compressors (as zip stores them) from each backend."""
    if backend == "zlib-ng":
        from zlib_ng import zlib_ng

        return lambda: zlib_ng.compressobj(DEFLATE_LEVEL, zlib_ng.DEFLATED, -15)
    if backend == "isal":
        from isal import isal_zlib

        return lambda: isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, -15)
    return lambda: zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)


def read_crc_loop(case: Case, sink: Sink, backend: str, deflate: bool) -> dict:
    """Read every input byte (reads into one reused buffer) and CRC it; optionally deflate.

    The compressed bytes go to the sink, so "archive size" shows the bare deflate size.
    """
    crc32 = crc32_function(backend)
    new_compressor = compressobj_factory(backend) if deflate else None
    buffer = bytearray(LIMIT_READ_SIZE)
    view = memoryview(buffer)
    read = 0
    for path, _ in case.dataset.files():
        crc = 0
        compressor = new_compressor() if new_compressor else None
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                read += n
                crc = crc32(view[:n], crc)
                if compressor is not None:
                    sink.write(compressor.compress(view[:n]))
        if compressor is not None:
            sink.write(compressor.flush())
    return {"input_read": read}


def run_cat(case: Case, sink: Sink) -> dict:
    """``cat file > /dev/null``: the cost of just moving the bytes, in C."""
    import subprocess

    paths = [path for path, _ in case.dataset.files()]
    with open(os.devnull, "wb") as devnull:
        subprocess.run(["cat", *paths], stdout=devnull, check=True)
    return {"maxrss_kib": None}  # the Python wrapper's size would say nothing about cat


# --------------------------------------------------------------------------------------
# The implementation registry
# --------------------------------------------------------------------------------------


class Impl(NamedTuple):
    name: str
    kind: str  # "archiver" writes a zip; "limit" is a ceiling to compare with
    run: Callable[[Case, Sink], dict]
    applies: Callable[[Case], bool] = lambda case: True
    imports: tuple[str, ...] = ()  # imported before the clock starts (stream_zip: ~90 ms)


def _limit(name: str, backend: str, deflate: bool, applies=lambda case: True) -> Impl:
    modules = {"zlib": (), "zlib-ng": ("zlib_ng.zlib_ng",), "isal": ("isal.isal_zlib",)}
    return Impl(name, "limit", lambda case, sink: read_crc_loop(case, sink, backend, deflate),
                applies, modules[backend])


def _is_zip(case: Case) -> bool:
    return not case.is_tar


def _is_stored(case: Case) -> bool:
    return case.compression == "stored"


def _is_deflate(case: Case) -> bool:
    return case.compression == "deflate"


def _is_plain_tar(case: Case) -> bool:
    return case.compression == "tar"


def _is_targz(case: Case) -> bool:
    return case.compression == "tar.gz"


IMPLS = {
    impl.name: impl
    for impl in [
        Impl("zipwsgi", "archiver", run_zipwsgi, imports=("zipwsgi",)),
        Impl("zipstream-ng", "archiver", run_zipstream_ng, _is_zip, ("zipstream",)),
        Impl("stream-zip", "archiver", run_stream_zip, _is_zip, ("stream_zip",)),
        Impl("stream-zip-2pass", "archiver", run_stream_zip_2pass, _is_stored, ("stream_zip",)),
        Impl("zipfile", "archiver", run_zipfile, _is_zip),
        Impl("tarfile", "archiver", run_tarfile, lambda case: case.is_tar, ("tarfile",)),
        Impl("GNU tar -cf - | cat", "limit", run_gnu_tar, _is_plain_tar),
        Impl("GNU tar -czf -", "limit", lambda case, sink: run_gnu_tar(case, sink, "gzip"),
             _is_targz),
        Impl("GNU tar -cf - | pigz", "limit", lambda case, sink: run_gnu_tar(case, sink, "pigz"),
             _is_targz),
        _limit("read+crc32 zlib", "zlib", False, _is_zip),
        _limit("read+crc32 zlib-ng", "zlib-ng", False, _is_zip),
        _limit("read+crc32 isal", "isal", False, _is_zip),
        _limit(f"read+crc+deflate-{DEFLATE_LEVEL} zlib", "zlib", True, _is_deflate),
        _limit(f"read+crc+deflate-{DEFLATE_LEVEL} zlib-ng", "zlib-ng", True, _is_deflate),
        _limit(f"read+crc+deflate-{ISAL_LEVEL} isal", "isal", True, _is_deflate),
        Impl("cat > /dev/null", "limit", run_cat, lambda case: not case.dataset.is_tree),
    ]
}


# --------------------------------------------------------------------------------------
# Child side: one measurement in one fresh process
# --------------------------------------------------------------------------------------


def peak_rss_kib() -> int:
    """This process's own peak RSS in KiB.

    Linux's ``ru_maxrss`` is no good here: it survives ``exec``, so a child would report
    the benchmark parent's size when that is larger. ``VmHWM`` belongs to the new
    address space only. (``cat`` runs in a grandchild and is not measured.)
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_one(case: Case, impl: Impl, hash_output: bool, output: str | None) -> dict:
    """Time one implementation on one case; the result is printed as a JSON line."""
    try:
        for module in impl.imports:
            importlib.import_module(module)
    except ImportError as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    sink = Sink(hash_output=hash_output, output=output)
    try:
        started = time.perf_counter()
        extra = impl.run(case, sink)
        seconds = time.perf_counter() - started
    except ImportError as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    finally:
        sink.close()
    result = {
        "seconds": seconds,
        "input_bytes": case.dataset.payload_bytes(),
        # Limits that only read have no output; the deflate limits report their bytes.
        "output_bytes": sink.count if impl.kind == "archiver" or sink.count else None,
        "maxrss_kib": peak_rss_kib(),
        **extra,
    }
    if sink.digest is not None:
        result["sha256"] = sink.digest.hexdigest()
    return result


def use_work_tree() -> None:
    """Make ``import zipwsgi`` find this work tree's package, installed or not."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


def parse_child_args(argv: list[str]) -> argparse.Namespace | None:
    """A child's arguments, parsed by hand because ``argparse`` adds 0.4 MiB to its RSS.

    Understands what ``measure`` and ``baseline_rss_mib`` pass (plus ``--hash``); returns
    None for anything else, which then goes through ``parse_args`` as before.
    """
    from types import SimpleNamespace  # already loaded by the interpreter's start-up

    args = {"run_one": None, "baseline_rss": False, "quick": False, "hash": False,
            "output": None}
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        if flag == "--run-one" and len(rest) >= 2 and not rest[0].startswith("-") \
                and not rest[1].startswith("-"):
            args["run_one"] = [rest.pop(0), rest.pop(0)]
        elif flag == "--output" and rest and not rest[0].startswith("-"):
            args["output"] = rest.pop(0)
        elif flag in ("--baseline-rss", "--quick", "--hash"):
            args[flag[2:].replace("-", "_")] = True
        else:
            return None
    if not (args["run_one"] or args["baseline_rss"]):
        return None
    return SimpleNamespace(**args)


def child_main(args: argparse.Namespace) -> int:
    if args.baseline_rss:
        print(json.dumps({"maxrss_kib": peak_rss_kib()}), flush=True)
        return 0
    case_name, impl_name = args.run_one
    case = all_cases(args.quick)[case_name]
    impl = IMPLS[impl_name]
    use_work_tree()
    try:
        result = run_one(case, impl, args.hash, args.output)
    except Exception as exc:  # reported as an "error" row rather than a crash
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------
# Parent side: rounds, verification, tables
# --------------------------------------------------------------------------------------


# Runs this file's precompiled code as ``__main__`` with its real ``__file__`` and path.
# argv: -c, the code file, this file, then the child's own arguments.
CHILD_BOOTSTRAP = """\
import marshal, os, sys
code_path, path = sys.argv[1:3]
sys.argv[:3] = [path]
sys.path[0] = os.path.dirname(path)
with open(code_path, "rb") as f:
    code = marshal.loads(f.read())
exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
"""

_compiled_self: list[str | None] = []  # one entry once compiled_self() has run


def compiled_self() -> str | None:
    """This file's bytecode in a temporary file (removed at exit), or None on failure.

    Python never caches a script's bytecode, and compiling these 1,000 lines peaks at about
    3 MiB, which would stay in every child's peak RSS; unmarshalling costs a fraction.
    """
    if not _compiled_self:
        import atexit
        import marshal
        import tempfile

        path = os.path.abspath(__file__)
        try:
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec", dont_inherit=True)
            fd, code_path = tempfile.mkstemp(prefix="zipwsgi-bench-", suffix=".code")
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(code))
            atexit.register(os.remove, code_path)
        except (OSError, SyntaxError, ValueError):
            code_path = None
        _compiled_self.append(code_path)
    return _compiled_self[0]


def child_command(args: list[str]) -> list[str]:
    """The command line of a child running this file with ``args`` (see compiled_self)."""
    path = os.path.abspath(__file__)
    code_path = compiled_self()
    if code_path is None:
        return [sys.executable, path, *args]
    return [sys.executable, "-c", CHILD_BOOTSTRAP, code_path, path, *args]


def measure(case: Case, impl: Impl, quick: bool, output: str | None = None) -> dict:
    """Run one child process and return its JSON report."""
    import subprocess

    command = child_command(["--run-one", case.name, impl.name])
    if quick:
        command.append("--quick")
    if output:
        command += ["--output", output]
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=3600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"child exited with status {proc.returncode}"}
    return json.loads(lines[-1])


def baseline_rss_mib() -> float:
    """Peak RSS of a child that imports the harness and does nothing: subtract it mentally
    from every RSS figure to see what the library itself costs."""
    import subprocess

    command = child_command(["--baseline-rss"])
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout)["maxrss_kib"] / 1024


def interpreter_rss_mib() -> float | None:
    """Peak RSS of a bare ``python -c`` (same interpreter, same site packages), so the
    report can say how much of the idle child's RSS is the harness; None off Linux."""
    import subprocess

    code = ("with open('/proc/self/status') as f:\n"
            "    print(next(line.split()[1] for line in f if line.startswith('VmHWM:')))")
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    output = proc.stdout.strip()
    return int(output) / 1024 if proc.returncode == 0 and output.isdigit() else None


def baseline_text(baseline: float, interpreter: float | None) -> str:
    """The idle child's peak RSS, split into interpreter and harness when known."""
    if interpreter is None:
        return f"{baseline:.1f} MiB (interpreter + harness)"
    return (f"{baseline:.1f} MiB (bare interpreter {interpreter:.1f} MiB + harness "
            f"{baseline - interpreter:.1f} MiB)")


def expected_members(case: Case) -> dict[str, int]:
    return {
        arcname: os.path.getsize(path) for path, arcname in case.dataset.files()
    }


def check_archive(path: str, case: Case, report: dict) -> str:
    """Open the archive with ``zipfile``, CRC-check every member, compare names and sizes
    (``tarfile`` for tar cases: every member read, names and sizes compared)."""
    import zipfile

    size = os.path.getsize(path)
    declared = report.get("declared_size")
    if declared is not None and declared != size:
        return f"declared size {declared} but wrote {size}"
    if case.is_tar:
        return check_tar_archive(path, case)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                return f"bad CRC in {bad}"
            members = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"zipfile cannot read it: {exc}"
    expected = expected_members(case)
    if members != expected:
        missing = len(expected.keys() - members.keys())
        extra = len(members.keys() - expected.keys())
        return f"members differ: {missing} missing, {extra} unexpected, or sizes differ"
    return "ok"


def check_tar_archive(path: str, case: Case) -> str:
    import tarfile

    members = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                if info.isreg():
                    reader = archive.extractfile(info)
                    while reader.read(1 << 20):  # reads it all: a gzip CRC is checked
                        pass
                    members[info.name] = info.size
    except (tarfile.TarError, OSError, EOFError) as exc:
        return f"tarfile cannot read it: {exc}"
    if members != expected_members(case):
        return "members differ: names or sizes"
    return "ok"


def verify_case(case: Case, impls: list[Impl], quick: bool) -> dict[str, str]:
    """Write each archiver's output to a temporary file once and check it."""
    import tempfile

    verdicts = {}
    with tempfile.TemporaryDirectory(prefix="zipwsgi-bench-") as tmp:
        for impl in impls:
            if impl.kind != "archiver":
                continue
            path = os.path.join(tmp, "archive.zip")
            report = measure(case, impl, quick, output=path)
            if "skipped" in report or "error" in report:
                verdicts[impl.name] = report.get("skipped") or report["error"]
            else:
                verdicts[impl.name] = check_archive(path, case, report)
            if os.path.exists(path):
                os.remove(path)
            print(f"  verify {impl.name:<18} {verdicts[impl.name]}", flush=True)
    return verdicts


class Row:
    """Every measurement of one implementation on one case, plus what went wrong."""

    __slots__ = ("impl", "reports", "note")

    def __init__(self, impl: Impl, reports: list[dict], note: str = "") -> None:
        self.impl = impl
        self.reports = reports
        self.note = note

    def __repr__(self) -> str:
        return f"Row(impl={self.impl!r}, reports={self.reports!r}, note={self.note!r})"

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.reports if "seconds" in r]

    @property
    def seconds(self) -> float | None:
        import statistics

        ok = self.ok
        return statistics.median(r["seconds"] for r in ok) if ok else None

    def throughput(self, input_bytes: int) -> float | None:
        seconds = self.seconds
        return input_bytes / seconds / MB if seconds else None

    @property
    def spread(self) -> float | None:
        """(slowest - fastest) / median, to show how much the rounds agree."""
        ok = self.ok
        if len(ok) < 2:
            return None
        import statistics

        times = [r["seconds"] for r in ok]
        return (max(times) - min(times)) / statistics.median(times)

    @property
    def archive_bytes(self) -> int | None:
        sizes = [r["output_bytes"] for r in self.ok if r.get("output_bytes") is not None]
        return sizes[0] if sizes else None

    @property
    def rss_mib(self) -> float | None:
        sizes = [r["maxrss_kib"] for r in self.ok if r.get("maxrss_kib") is not None]
        return max(sizes) / 1024 if sizes else None


def bench_case(case: Case, impls: list[Impl], rounds: int, quick: bool) -> list[Row]:
    """Run every implementation ``rounds`` times, rotating who goes first each round."""
    rows = {impl.name: Row(impl, []) for impl in impls}
    active = list(impls)
    for round_index in range(rounds):
        shift = round_index % len(active) if active else 0
        for impl in active[shift:] + active[:shift]:
            report = measure(case, impl, quick)
            row = rows[impl.name]
            if "skipped" in report:
                row.note = "skipped: " + report["skipped"]
            elif "error" in report:
                row.note = "error: " + report["error"]
            else:
                row.reports.append(report)
                declared = report.get("declared_size")
                if declared is not None and declared != report["output_bytes"]:
                    row.note = f"SIZE MISMATCH: declared {declared}, wrote {report['output_bytes']}"
            print(f"  round {round_index + 1}/{rounds} {impl.name:<26} {progress_text(report)}",
                  flush=True)
        active = [impl for impl in active if not rows[impl.name].note.startswith("skipped")]
    return list(rows.values())


def progress_text(report: dict) -> str:
    if "seconds" in report:
        return f"{report['seconds']:.3f} s"
    return report.get("skipped") or report.get("error", "?")


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def zipwsgi_ratio(rows: list[Row], row: Row, input_bytes: int) -> float | None:
    """zipwsgi throughput / this row's throughput: >1 means zipwsgi is faster."""
    ours = next((r for r in rows if r.impl.name == "zipwsgi"), None)
    mine = ours.throughput(input_bytes) if ours else None
    theirs = row.throughput(input_bytes)
    return mine / theirs if mine and theirs else None


def table_rows(case: Case, rows: list[Row]) -> list[list[str]]:
    input_bytes = case.dataset.payload_bytes()
    table = []
    for row in sorted(rows, key=lambda r: r.impl.kind):  # archivers first, then limits
        if not row.ok:
            table.append([row.impl.name, row.impl.kind, "-", "-", "-", "-", "-", "-",
                          row.note or "no result"])
            continue
        spread = row.spread
        table.append([
            row.impl.name,
            row.impl.kind,
            _fmt(row.seconds, ".3f"),
            "-" if spread is None else f"{spread * 100:.0f}%",
            _fmt(row.throughput(input_bytes), ",.0f"),
            "-" if row.archive_bytes is None else f"{row.archive_bytes:,}",
            _fmt(row.rss_mib, ".1f"),
            _fmt(zipwsgi_ratio(rows, row, input_bytes), ".2f"),
            row.note,
        ])
    return table


HEADERS = ["impl", "kind", "median s", "spread", "MB/s", "archive bytes", "peak RSS MiB",
           "zipwsgi x", "note"]


def print_table(case: Case, rows: list[Row], rounds: int, unit: str = "round",
                baseline: str | None = None) -> None:
    table = [HEADERS] + table_rows(case, rows)
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    print(f"\n== {case.name}: {case.dataset.describe()}, {case.compression}, "
          f"median of {rounds} {unit}(s) ==")
    for line in table:
        cells = [
            cell.ljust(width) if i in (0, 1, 8) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ]
        print("  ".join(cells).rstrip())
    per_file = per_file_text(case, rows)
    if per_file:
        print(per_file)
    if baseline:
        print(f"peak RSS includes an idle child's {baseline}")
    print(flush=True)


def per_file_text(case: Case, rows: list[Row]) -> str:
    """For trees of small files: zipwsgi's time per file beyond the bare read + CRC-32
    loop (zlib), the figure issue #12's small-file target is stated in."""
    if not case.dataset.is_tree:
        return ""
    by_name = {row.impl.name: row for row in rows if row.ok}
    ours, bare = by_name.get("zipwsgi"), by_name.get("read+crc32 zlib")
    if ours is None or bare is None or ours.seconds is None or bare.seconds is None:
        return ""
    beyond = (ours.seconds - bare.seconds) / case.dataset.size * 1e6
    return (f"zipwsgi: {beyond:.1f} µs per file beyond read+crc32 zlib "
            f"({ours.seconds:.3f} s against {bare.seconds:.3f} s)")


def machine_description() -> str:
    """One line naming the machine, so numbers in a README say where they came from."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    return (f"{platform.platform()}, {cpu}, nproc {nproc}, "
            f"Python {platform.python_version()}")


def library_versions() -> str:
    from importlib import metadata

    found = []
    for name in ["zipwsgi", "zipstream-ng", "stream-zip", "zlib-ng", "isal"]:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name == "zipwsgi":
                found.append("zipwsgi (work tree)")
    return ", ".join(found)


def print_markdown(results: list[tuple[Case, list[Row]]], rounds: int, baseline: float) -> None:
    import datetime as dt

    print(f"### Benchmarks\n\nMeasured {dt.date.today().isoformat()} on "
          f"{machine_description()}; {library_versions()}.\nMedian of {rounds} round(s), "
          "each run in a fresh process with a warm page cache; MB/s = input bytes / wall "
          "time (10^6 bytes/s); *zipwsgi x* = zipwsgi's throughput / that row's; peak RSS "
          f"includes {baseline:.0f} MiB of interpreter and harness.\n")
    print_markdown_tables(results)


def print_markdown_tables(results: list[tuple[Case, list[Row]]]) -> None:
    for case, rows in results:
        print(f"#### {case.name}: {case.dataset.describe()}, {case.compression}\n")
        print("| implementation | seconds | MB/s | archive bytes | peak RSS MiB | zipwsgi x |")
        print("|---|---:|---:|---:|---:|---:|")
        for line in table_rows(case, rows):
            name, kind, seconds, _, mbps, size, rss, ratio, note = line
            label = (f"{name} (limit)" if kind == "limit" else name).replace("|", "\\|")
            if note and seconds == "-":
                seconds = note.split(":")[0]
            print(f"| {label} | {seconds} | {mbps} | {size} | {rss} | {ratio} |")
        print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small data, 1 round by default, archives verified")
    parser.add_argument("--cases", help=f"comma-separated, default {','.join(DEFAULT_CASES)}")
    parser.add_argument("--impls", help="comma-separated subset of implementations")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 3, quick 1)")
    parser.add_argument("--huge", action="store_true", help="add the 1 GiB huge-stored case")
    parser.add_argument("--verify", action="store_true",
                        help="before timing, check each archive opens with zipfile")
    parser.add_argument("--markdown", action="store_true", help="print a README-ready table")
    parser.add_argument("--list", action="store_true", help="list cases and implementations")
    parser.add_argument("--run-one", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-rss", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hash", action="store_true",
                        help="with --run-one: also report the archive's SHA-256")
    return parser.parse_args(argv)


def select_names(spec: str | None, default: list[str], known: dict, what: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()] if spec else default
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def compile_zipwsgi() -> None:
    """Byte-compile the zipwsgi package in place, as pip does for the peers' packages.

    A work-tree checkout (and ``PYTHONDONTWRITEBYTECODE``) would otherwise make every
    child compile zipwsgi from source, which costs it ~1.5 MiB of peak RSS and some
    start-up that the installed peers never pay. Pythons read bytecode even when told not
    to write it, so compiling once here evens that out.
    """
    import compileall

    package = os.path.join(ROOT, "zipwsgi")
    if os.path.isdir(package):
        compileall.compile_dir(package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    child_args = parse_child_args(argv)  # the usual child path: no argparse import
    if child_args is not None:
        return child_main(child_args)
    args = parse_args(argv)
    if args.run_one or args.baseline_rss:
        return child_main(args)
    cases = all_cases(args.quick)
    if args.list:
        for case in cases.values():
            print(f"{case.name:<16} {case.dataset.describe()}, {case.compression}")
        print("\n".join(f"{impl.kind:<9} {impl.name}" for impl in IMPLS.values()))
        return 0
    default_cases = DEFAULT_CASES + (["huge-stored"] if args.huge else [])
    case_names = select_names(args.cases, default_cases, cases, "case")
    impl_names = select_names(args.impls, list(IMPLS), IMPLS, "implementation")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    compile_zipwsgi()
    baseline = baseline_rss_mib()
    baseline_note = baseline_text(baseline, interpreter_rss_mib())
    print(f"machine: {machine_description()}\nlibraries: {library_versions()}\n"
          f"baseline RSS of an idle child: {baseline_note}; every peak RSS figure "
          "includes it", flush=True)

    results = []
    for name in case_names:
        case = cases[name]
        impls = [IMPLS[n] for n in impl_names if IMPLS[n].applies(case)]
        print(f"\n[{case.name}] {case.dataset.describe()}, {case.compression}", flush=True)
        ensure_dataset(case.dataset)
        warm_page_cache(case.dataset)
        if args.verify or args.quick:
            verify_case(case, impls, args.quick)
        rows = bench_case(case, impls, rounds, args.quick) if rounds > 0 else []
        if rows:
            print_table(case, rows, rounds, baseline=baseline_note)
            results.append((case, rows))
    if args.markdown and results:
        print_markdown(results, rounds, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
