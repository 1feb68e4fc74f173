"""The report as data: pages of headings, prose, links and tables. Columns carry their direction;
rows the suite, task, entry, method and result files behind them; cells the numbers (mean, spread
and n, or a difference and its interval) beside the text that ``markdown.py`` and ``html.py``
show. Prose may mark names as `code` and words as **bold**; every link is a ``Ref``, never text."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Ref(NamedTuple):
    """A report page (``""``: the headline) and an anchor on it, or a file under the results folder."""

    page: str | None = None
    anchor: str = ""
    file: str = ""


@dataclass(frozen=True)
class Column:
    key: str  # a metric key, a cost key or a field name
    title: str
    higher: bool | None = None  # higher is better; None: not ranked

    @property
    def label(self) -> str:
        return self.title + {True: " ↑", False: " ↓", None: ""}[self.higher]


@dataclass(frozen=True)
class Cell:
    text: str  # what both renderers show
    value: float | None = None  # the mean, ratio or difference
    spread: float | None = None  # standard deviation over seeds
    n: int = 0  # seeds behind the value
    lo: float | None = None  # 95 % interval of a difference
    hi: float | None = None
    code: bool = False  # a name
    bold: bool = False  # the best of its column
    verdict: str = ""  # a claim's verdict, shown after the text
    link: Ref | None = None
    anchor: str = ""  # the id other cells link to


@dataclass
class Row:
    cells: dict[str, Cell]  # by column key
    suite: str = ""
    task: str = ""
    entry: str = ""
    method: str = ""  # registry name
    files: tuple[str, ...] = ()  # result files behind the row, relative to the results folder
    external: bool = False


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]
    anchor: str = ""

    @classmethod
    def of(cls, titles: dict[str, str], rows: list[Row], anchor: str = "") -> Table:
        """A table of unranked columns, ``titles`` by column key."""
        return cls([Column(*kv) for kv in titles.items()], rows, anchor)

    def cell(self, entry: str, key: str, **where: str) -> Cell:
        """The cell of ``entry``'s row (and of the row whose cells' texts match ``where``) in column ``key``."""
        return next(r.cells[key] for r in self.rows
                    if r.entry == entry and all(r.cells[k].text == v for k, v in where.items()))


class Heading(NamedTuple):
    level: int
    text: str
    anchor: str = ""


class Para(NamedTuple):
    text: str


class Bullets(NamedTuple):
    items: Sequence[str]


class Links(NamedTuple):
    label: str
    items: Sequence[tuple[str, Ref]]


Block = Heading | Para | Bullets | Links | Table


@dataclass
class Page:
    key: str  # "": the headline; the others are written to <results>/reports/<key>.md
    title: str
    blocks: list[Block] = field(default_factory=list)


BACK = Links("Back", [("leaderboard", Ref(""))])


def detail(key: str, title: str, *blocks: Block) -> Page:
    """A detail page: its title as the heading, a link back to the headline, then ``blocks``."""
    return Page(key, title, [Heading(1, title), BACK, *blocks])


def slug(*parts: object) -> str:
    return re.sub(r"[^a-z0-9]+", "-", " ".join(map(str, parts)).lower()).strip("-")


def mean(values: Sequence[float | None]) -> float:
    """The mean of the values that are numbers (NaN where none is)."""
    return float(np.mean(v)) if (v := [x for x in values if x is not None and not math.isnan(x)]) else math.nan


def stat(values: Sequence[float | None]) -> Cell:
    """Mean ± standard deviation over seeds, three decimals (one at 100 and above)."""
    if not (v := [x for x in values if x is not None and not math.isnan(x)]):
        return Cell("–")
    m, sd = float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None
    d = 3 if abs(m) < 100 else 1
    return Cell(f"{m:.{d}f}" + (f" ± {sd:.{d}f}" if sd is not None else ""), m, sd, len(v))


def number(v: float, fmt: str = ".2f") -> Cell:
    return Cell("–") if math.isnan(v) else Cell(f"{v:{fmt}}", v)


def text(s: object, code: bool = False, **kw) -> Cell:
    return Cell(str(s), code=code, **kw)


def interval(r: dict, **kw) -> Cell:
    """A paired difference and its 95 % interval: ``+0.012 [-0.003, +0.027]`` († seed spread only, ‡ one seed)."""
    d, lo, hi, kw = r["diff"], r["lo"], r["hi"], {"verdict": r.get("verdict", ""), "n": r["seeds"], **kw}
    if math.isnan(d):
        return Cell("–", **kw)
    if math.isnan(lo):
        return Cell(f"{d:+.3f} [no interval]", d, **kw)
    mark = "†" if r["interval"] == "seeds only" else "‡" if r["seeds"] == 1 else ""
    return Cell(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark}", d, lo=lo, hi=hi, **kw)


def find(pages: list[Page], anchor: str) -> Table:
    """The table whose anchor is ``anchor``, on any of ``pages``."""
    return next(b for p in pages for b in p.blocks if isinstance(b, Table) and b.anchor == anchor)
