"""Split a byte stream into JSONL lines, however the network chunked it.

Splitting decoded text per chunk breaks records at chunk (or gzip block)
boundaries (contract §15 item 4); this buffers bytes and splits on ``\\n`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["TERMINATED_EARLY", "is_terminated_early", "iter_lines"]

# Export can end a 200 response with this marker after a cut record (contract §4).
TERMINATED_EARLY = b"terminated early"


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield each non-blank line (without its newline) of the concatenated chunks."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        data = pending + chunk if pending else chunk
        parts = data.split(b"\n")
        pending = parts.pop()
        for part in parts:
            if part.strip():
                yield part
    if pending.strip():
        yield pending


def is_terminated_early(line: bytes) -> bool:
    """Return True if a (last) line carries Mixpanel's ``terminated early`` marker."""
    return line.rstrip().endswith(TERMINATED_EARLY)
