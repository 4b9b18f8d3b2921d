"""The README's code blocks, as a Markdown parser sees them, for the tests that run them.

A block the tests cannot run as written says why in an HTML comment right before it:
``<!-- not run: reason -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->", re.S)


@dataclass(frozen=True)
class Block:
    """One fenced or indented code block of the README."""

    line: int  # 1-based line of the block's first line (the fence, if any)
    lang: str  # the fence's info string; "" for a bare fence or an indented block
    text: str
    not_run: str | None  # the reason given by a `<!-- not run: ... -->` just before it


def readme_blocks() -> list[Block]:
    """Every code block of README.md, in order."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(README.read_text(encoding="utf-8"))
    out: list[Block] = []
    for i, tok in enumerate(tokens):
        if tok.type not in ("fence", "code_block") or tok.map is None:
            continue
        before = tokens[i - 1] if i else None
        marked = _NOT_RUN.fullmatch(before.content.strip()) if before is not None else None
        if before is not None and before.type != "html_block":
            marked = None
        out.append(
            Block(
                line=tok.map[0] + 1,
                lang=tok.info.strip(),
                text=tok.content,
                not_run=" ".join(marked.group(1).split()) if marked else None,
            )
        )
    return out


def tour_block() -> Block:
    """The command-line tour: the first block after "### On the command line"."""
    lines = README.read_text(encoding="utf-8").splitlines()
    heading = lines.index("### On the command line") + 1
    return next(b for b in readme_blocks() if b.line > heading)
