"""A report as data (title, sections of paragraphs, tables and figures), rendered twice: Markdown
with figures linked next to it, and one self-contained HTML file with the figures embedded."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path
    """A PNG file in the report's folder."""
    caption: str


Block = str | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def write_markdown(self, path: Path) -> None:
        lines = [f"# {self.title}", ""]
        lines += _markdown_blocks(self.intro, path.parent)
        for section in self.sections:
            lines += [f"## {section.title}", ""]
            lines += _markdown_blocks(section.blocks, path.parent)
        path.write_text("\n".join(lines).rstrip() + "\n")

    def write_html(self, path: Path) -> None:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        parts += _html_blocks(self.intro)
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
            parts += _html_blocks(section.blocks)
        parts.append("</body></html>")
        path.write_text("\n".join(parts))


def _markdown_blocks(blocks: list[Block], folder: Path) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            out.append("| " + " | ".join(block.header) + " |")
            out.append("|" + "|".join("---" for _ in block.header) + "|")
            out += ["| " + " | ".join(row) + " |" for row in block.rows]
        elif isinstance(block, Figure):
            out.append(f"![{block.caption}]({block.path.relative_to(folder).as_posix()})")
        else:
            out.append(block)
        out.append("")
    return out


def _html_blocks(blocks: list[Block]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.path.read_bytes()).decode()
            out.append(f"<figure><img alt='{html.escape(block.caption)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
        else:
            out.append(f"<p>{html.escape(block)}</p>")
    return out


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}figcaption{color:#666;font-size:13px}")
