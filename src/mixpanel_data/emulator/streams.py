"""Response body streams: large file reads, gzip, and the byte-level faults.

Unfiltered exports are the emulator's hot path. They stream the project's cached
day files in 1 MiB reads with no per-line Python work; gzip answers reuse per-day
raw-deflate fragments cached next to the day files. Each fragment ends with a sync
flush, so fragments compressed independently concatenate into one valid deflate
stream; the gzip trailer's CRC is combined from the per-day CRCs
(``crc32_combine``), so a cached gzip export costs no more than a plain one.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mixpanel_data.emulator.faults import StreamReset

__all__ = [
    "CHUNK_SIZE",
    "GZIP_MIN_BYTES",
    "GzipFragments",
    "crc32_combine",
    "cut_after",
    "gzip_stream",
    "insert_malformed_line",
    "iter_files",
    "peek",
    "prefetched",
    "reset_after",
    "terminate_early",
    "throttle",
]

T = TypeVar("T")
R = TypeVar("R")

CHUNK_SIZE = 1 << 20
# Export gzips only bodies larger than this (contract §4).
GZIP_MIN_BYTES = 1400
GZIP_LEVEL = 1  # fast: the emulator must outrun any client on loopback
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # mtime 0: identical bytes every call
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # a final, empty fixed-Huffman deflate block
_FRAGMENT_HEADER = struct.Struct("<IQ")  # crc32, uncompressed size
MALFORMED_LINE = b'{"event":"Broken Record","properties":{"time":\n'
TERMINATED_EARLY = b"terminated early"


def iter_files(paths: Iterable[Path], *, stop: threading.Event | None = None) -> Iterator[bytes]:
    """Yield the files' bytes in large chunks; a server shutdown cuts the stream."""
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                if stop is not None and stop.is_set():
                    raise StreamReset("emulator shutting down")
                yield chunk


def peek(chunks: Iterable[bytes], size: int) -> tuple[bytes, Iterator[bytes], bool]:
    """Read at least ``size`` bytes ahead: (head, rest, exhausted)."""
    it = iter(chunks)
    parts: list[bytes] = []
    have = 0
    for chunk in it:
        parts.append(chunk)
        have += len(chunk)
        if have >= size:
            return b"".join(parts), it, False
    return b"".join(parts), iter(()), True


def gzip_stream(chunks: Iterable[bytes], *, level: int = GZIP_LEVEL) -> Iterator[bytes]:
    """Compress a stream into one gzip member on the fly."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B) (zlib's GF(2) method)."""
    if len2 <= 0:
        return crc1

    def times(matrix: list[int], vector: int) -> int:
        total, i = 0, 0
        while vector:
            if vector & 1:
                total ^= matrix[i]
            vector >>= 1
            i += 1
        return total

    def square(matrix: list[int]) -> list[int]:
        return [times(matrix, matrix[n]) for n in range(32)]

    odd = [0xEDB88320] + [1 << n for n in range(31)]  # operator for one zero bit
    even = square(odd)  # two zero bits
    odd = square(even)  # four zero bits
    while True:
        even = square(odd)
        if len2 & 1:
            crc1 = times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = square(even)
        if len2 & 1:
            crc1 = times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


class GzipFragments:
    """Per-file raw-deflate fragments, cached on disk next to the files they compress."""

    def __init__(self, *, level: int = GZIP_LEVEL) -> None:
        self.level = level
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def fragment(self, source: Path) -> tuple[Path, int, int]:
        """Return (fragment path, crc32, uncompressed size), compressing once per file."""
        target = source.parent / "gzip-fragments" / f"{source.name}.deflate{self.level}"
        size = source.stat().st_size
        found = self._read_header(target)
        if found is not None and found[1] == size:
            return target, found[0], found[1]
        with self._guard:
            lock = self._locks.setdefault(target, threading.Lock())
        with lock:
            found = self._read_header(target)
            if found is not None and found[1] == size:
                return target, found[0], found[1]
            crc, size = self._compress(source, target)
            return target, crc, size

    def _read_header(self, target: Path) -> tuple[int, int] | None:
        try:
            with open(target, "rb") as handle:
                head = handle.read(_FRAGMENT_HEADER.size)
        except FileNotFoundError:
            return None
        if len(head) != _FRAGMENT_HEADER.size:
            return None
        crc, size = _FRAGMENT_HEADER.unpack(head)
        return int(crc), int(size)

    def _compress(self, source: Path, target: Path) -> tuple[int, int]:
        target.parent.mkdir(parents=True, exist_ok=True)
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        crc, size = 0, 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".deflate")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as handle:
                out.write(_FRAGMENT_HEADER.pack(0, 0))
                while chunk := handle.read(CHUNK_SIZE):
                    crc = zlib.crc32(chunk, crc)
                    size += len(chunk)
                    out.write(compressor.compress(chunk))
                out.write(compressor.flush(zlib.Z_SYNC_FLUSH))
                out.seek(0)
                out.write(_FRAGMENT_HEADER.pack(crc, size))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return crc, size

    @staticmethod
    def gzip_body(
        parts: Iterable[tuple[Path, int, int]], *, stop: threading.Event | None = None
    ) -> Iterator[bytes]:
        """One gzip member from fragments (as ``fragment`` returns them), in order."""
        yield GZIP_HEADER
        crc, total = 0, 0
        for frag, part_crc, part_size in parts:
            with open(frag, "rb") as handle:
                handle.seek(_FRAGMENT_HEADER.size)
                while chunk := handle.read(CHUNK_SIZE):
                    if stop is not None and stop.is_set():
                        raise StreamReset("emulator shutting down")
                    yield chunk
            crc = crc32_combine(crc, part_crc, part_size)
            total += part_size
        yield _FINAL_EMPTY_BLOCK + struct.pack("<II", crc, total & 0xFFFFFFFF)


def prefetched(items: Sequence[T], prepare: Callable[[T], R]) -> Iterator[R]:
    """Yield ``prepare(item)`` in order, preparing the next item on a helper thread.

    Generating (or compressing) day N+1 overlaps with sending day N.
    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-prefetch") as pool:
        future = pool.submit(prepare, items[0])
        for item in items[1:]:
            current = future.result()
            future = pool.submit(prepare, item)
            yield current
        yield future.result()


# -- byte-level faults (see faults.py) -------------------------------------------------


def insert_malformed_line(chunks: Iterable[bytes], after_bytes: int | None) -> Iterator[bytes]:
    """Insert a line that is not JSON at the first line boundary at or after ``after_bytes``.

    ``None`` means after the first line; 0 means before everything.
    """
    seen = 0
    done = False
    for chunk in chunks:
        if not done:
            if after_bytes == 0:
                yield MALFORMED_LINE
                done = True
            else:
                low = 0 if after_bytes is None else max(0, after_bytes - 1 - seen)
                newline = chunk.find(b"\n", low) if low < len(chunk) else -1
                if newline >= 0:
                    seen += len(chunk)
                    yield chunk[: newline + 1] + MALFORMED_LINE + chunk[newline + 1 :]
                    done = True
                    continue
        seen += len(chunk)
        yield chunk
    if not done:
        yield MALFORMED_LINE


def terminate_early(chunks: Iterable[bytes], after_bytes: int | None) -> Iterator[bytes]:
    """End the body mid-record after ``after_bytes``, then ``terminated early`` (contract §4)."""
    limit = 1000 if after_bytes is None else after_bytes
    seen = 0
    held: bytes | None = None
    for chunk in chunks:
        if seen + len(chunk) > limit:
            cut = max(0, limit - seen)
            # Never cut on a line boundary or just before a newline: the last record
            # must be visibly incomplete.
            while cut < len(chunk) and (cut == 0 or chunk[cut - 1] == 10 or chunk[cut] == 10):
                cut += 1
            if cut < len(chunk):
                if held is not None:
                    yield held
                yield chunk[:cut] + b"\n" + TERMINATED_EARLY
                return
        if held is not None:
            yield held
        held = chunk
        seen += len(chunk)
    # The body was shorter than the limit: cut its last record in half.
    tail = held or b""
    stripped = tail.rstrip(b"\n")
    start = stripped.rfind(b"\n") + 1
    if len(stripped) > start:
        keep = start + max(1, (len(stripped) - start) // 2)
        yield tail[:keep] + b"\n" + TERMINATED_EARLY
    else:
        yield tail + TERMINATED_EARLY


def cut_after(chunks: Iterable[bytes], after_bytes: int | None, *, tail: int) -> Iterator[bytes]:
    """End the body cleanly after ``after_bytes`` bytes, or else drop its last ``tail`` bytes."""
    if after_bytes is not None:
        seen = 0
        for chunk in chunks:
            if seen + len(chunk) >= after_bytes:
                yield chunk[: after_bytes - seen]
                return
            seen += len(chunk)
            yield chunk
        return
    held = b""
    sent = False
    for chunk in chunks:
        held += chunk
        if len(held) > tail:
            yield held[:-tail]
            held = held[-tail:]
            sent = True
    if not sent:
        yield held[: len(held) // 2]


def reset_after(chunks: Iterable[bytes], after_bytes: int | None) -> Iterator[bytes]:
    """Send ``after_bytes`` bytes, then cut the connection."""
    limit = after_bytes or 0
    seen = 0
    for chunk in chunks:
        if seen + len(chunk) >= limit:
            if limit > seen:
                yield chunk[: limit - seen]
            raise StreamReset(f"connection reset by the emulator after {limit} bytes")
        seen += len(chunk)
        yield chunk
    raise StreamReset(f"connection reset by the emulator after {seen} bytes")


def throttle(
    chunks: Iterable[bytes], bytes_per_second: float, *, stop: threading.Event
) -> Iterator[bytes]:
    """Trickle the body at ``bytes_per_second`` (about ten writes a second)."""
    piece = max(1, int(bytes_per_second / 10))
    for chunk in chunks:
        for start in range(0, len(chunk), piece):
            part = chunk[start : start + piece]
            if stop.wait(len(part) / bytes_per_second):
                raise StreamReset("emulator shutting down")
            yield part
