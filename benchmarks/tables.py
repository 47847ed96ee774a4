"""The one markdown-table writer of the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this
folder on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path


def write_markdown(rows: list[dict], header: list[str], footnote: str, out: Path) -> str:
    """Write ``rows`` (missing cells empty) and a footnote to ``out`` (suffix ``.md``), print and return it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row.get(h, "")) for h in header) + " |" for row in rows]
    markdown = "\n".join(lines) + f"\n\n{footnote}\n"
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return markdown
