"""The leaderboard as one self-contained HTML page, drawn from the same pages and tables as the
Markdown: the headline, each detail page one click away. Each row carries its suite, task, entry
and result files, each cell its value for sorting; the quality-against-cost plot is drawn in the
browser from ``frontier.plot_points``, opening on the suite of record's first task. Styles and
scripts are inline (``templates/leaderboard.html``): no network, and the same bytes each time."""

from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path

from .. import catalogue, frontier
from . import costs
from .sections import MAIN
from .tables import Block, Bullets, Cell, Heading, Links, Page, Para, Ref

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "leaderboard.html"
PLOT_METRICS = (*MAIN[:5], f"ood_mean/auroc_{catalogue.DEFAULT_SCORE}", *MAIN[5:])
PLOT_COSTS = [(k, f"{t} the single model (side by side)") for k, t in costs.AXES.items()]


def _prose(text: str) -> str:
    """Prose as written for both renderers: `code` and **bold** (no links: those are ``Ref``s)."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)


def _cell(c: Cell, href) -> str:
    out = f"<code>{html.escape(c.text)}</code>" if c.code else html.escape(c.text)
    out = f"<b>{out}</b>" if c.bold and out else out
    out = f'<a href="{html.escape(href(c.link))}">{out}</a>' if c.link else out
    out += f"{' ' if out else ''}<b>{html.escape(c.verdict)}</b>" if c.verdict else ""
    value = "" if c.value is None or math.isnan(c.value) else f' data-value="{c.value:.6g}"'
    return f'<td{f" id={chr(34)}{c.anchor}{chr(34)}" if c.anchor else ""}{value}>{out}</td>'


def _block(b: Block, href) -> str:
    if isinstance(b, Heading):
        return f'<h{b.level}{f" id={chr(34)}{b.anchor}{chr(34)}" if b.anchor else ""}>{_prose(b.text)}</h{b.level}>'
    if isinstance(b, Para):
        return f"<p>{_prose(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{_prose(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Links):
        return f"<p>{html.escape(b.label)}: " + " · ".join(
            f'<a href="{html.escape(href(r))}">{_prose(t)}</a>' for t, r in b.items) + "</p>"
    head = "".join(f'<th title="click to sort">{_prose(c.label)}</th>' for c in b.columns)
    body = ""
    for r in b.rows:  # each row carries its suite, task, entry and result files as data attributes
        data = {"suite": r.suite, "task": r.task, "method": r.entry, "external": int(r.external),
                "files": " ".join(href(Ref(file=f)) for f in r.files if f)}
        body += ("<tr" + "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in data.items() if v) + ">"
                 + "".join(_cell(r.cells[c.key], href) for c in b.columns) + "</tr>")
    return f'<table class="sortable" id="{b.anchor}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(pages: list[Page], jobs: list[dict], files: list[dict], here: Path, root: Path,
           start: tuple[str, str]) -> str:
    """The page written to ``here``; ``root`` is the results folder, ``start`` the (suite, task)
    the plot opens on. ``pages[0]`` is the headline."""
    def href(ref: Ref) -> str:
        if ref.file:
            return Path(os.path.relpath((root / ref.file).resolve(), here.parent.resolve())).as_posix()
        return f"#{ref.anchor or 'page-' + (ref.page or 'headline')}"

    def section(p: Page) -> str:
        return (f'<section class="page" id="page-{p.key or "headline"}"{"" if not p.key else " hidden"}>'
                + "\n".join(_block(b, href) for b in p.blocks) + "</section>")

    nav = " ".join(f'<a href="#page-{p.key or "headline"}">{_prose(p.title)}</a>' for p in pages)
    data = {"points": frontier.plot_points(jobs, files, PLOT_METRICS), "start": list(start),
            "metrics": [(k, catalogue.title(k), catalogue.higher(k)) for k in PLOT_METRICS], "costs": PLOT_COSTS}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    return (TEMPLATE.read_text(encoding="utf-8").replace("{{NAV}}", nav).replace("{{HEADLINE}}", section(pages[0]))
            .replace("{{DETAILS}}", "\n".join(section(p) for p in pages[1:])).replace("{{DATA}}", blob))
