"""Pages as Markdown. Links are resolved relative to the page's own file, so the headline and
the detail pages under ``<results>/reports/`` link to each other and to result files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .tables import Block, Bullets, Cell, Heading, Links, Page, Para, Ref, Row


def _cell(c: Cell, row: Row, first: bool, href: Callable[[Ref], str]) -> str:
    out = f"`{c.text}`" if c.code else c.text
    out += " (external)" if first and row.external else ""
    out = f"**{out}**" if c.bold and out else out
    out = f"[{out}]({href(c.link)})" if c.link else out
    out += f"{' ' if out else ''}**{c.verdict}**" if c.verdict else ""
    return f'<a id="{c.anchor}"></a>{out}' if c.anchor else out


def _block(b: Block, href: Callable[[Ref], str]) -> list[str]:
    if isinstance(b, Heading):
        anchor = f'<a id="{b.anchor}"></a>' if b.anchor else ""
        return ["#" * b.level + f" {anchor}{b.text}"]
    if isinstance(b, Para):
        return [b.text]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    if isinstance(b, Links):
        return [f"{b.label}: " + " · ".join(f"[{t}]({href(r)})" for t, r in b.items)]
    lines = ["| " + " | ".join(c.label for c in b.columns) + " |", "|" + "|".join("---" for _ in b.columns) + "|"]
    return lines + ["| " + " | ".join(_cell(r.cells[c.key], r, i == 0, href) for i, c in enumerate(b.columns)) + " |"
                    for r in b.rows]


def render(page: Page, here: Path, root: Path, paths: dict[str, Path]) -> str:
    """``page`` as written to ``here``: ``paths`` maps page keys to their files, ``root`` is the
    results folder that file links are relative to."""
    def href(ref: Ref) -> str:
        target = root / ref.file if ref.file else paths[ref.page]
        rel = Path(os.path.relpath(target.resolve(), here.parent.resolve())).as_posix()
        return rel + (f"#{ref.anchor}" if ref.anchor else "")

    return "\n".join(line for b in page.blocks for line in [*_block(b, href), ""]).rstrip() + "\n"
