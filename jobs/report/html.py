"""The report as one self-contained HTML document: inline CSS, figures as data URIs, no script, no link to
anything outside the file. Every text is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.report.figures import Png

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem;
     margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; vertical-align: top; }
th { background: #f4f4f4; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
p.caption { font-weight: 600; margin: 1rem 0 .2rem; }
figure { margin: .6rem 0 1rem; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
p.note { color: #555; font-size: .9rem; background: #fafafa; border-left: 3px solid #ccc; padding: .3rem .6rem; }
nav ol { columns: 2; font-size: .9rem; } .meta td { font-size: .8rem; }
"""


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class Fixed:
    """A number shown with a fixed format (money, shares), right-aligned like the other numbers."""

    value: float | None
    fmt: str = "{:,.2f}"


@dataclass
class Note:
    text: str


Block = Png | Table | Note


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self

    def note(self, text: str) -> Section:
        return self.add(Note(text))


def cell(value: Any) -> str:
    if value is None:
        return '<td class="n">–</td>'
    if isinstance(value, Fixed):
        return f'<td class="n">{"–" if value.value is None else html.escape(value.fmt.format(value.value))}</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="n">{value:,.4g}</td>' if abs(value) < 1000 else f'<td class="n">{value:,.0f}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(table: Table) -> str:
    caption = f'<p class="caption">{html.escape(table.caption)}</p>' if table.caption else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in table.rows)
    return f"{caption}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _block(block: Block) -> str:
    if isinstance(block, Png):
        alt = html.escape(block.alt, quote=True)
        return f'<figure><img src="{block.uri}" alt="{alt}" width="{block.width}" height="{block.height}"></figure>'
    if isinstance(block, Table):
        return _table(block)
    return f'<p class="note">{html.escape(block.text)}</p>'


def document(title: str, meta: Sequence[tuple[str, Any]], sections: Sequence[Section]) -> str:
    toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<table class="meta"><tbody>'
        + "".join(f"<tr><th>{html.escape(k)}</th>{cell(v)}</tr>" for k, v in meta) + "</tbody></table>",
        f"<nav><ol>{toc}</ol></nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        parts.extend(_block(b) for b in section.blocks)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def count_images(sections: Sequence[Section]) -> int:
    return sum(isinstance(b, Png) for s in sections for b in s.blocks)
