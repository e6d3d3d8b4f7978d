"""MkDocs hook: pages whose text lives outside docs/, included at build time so they are never copied by hand.

INCLUDED maps a page of the site to a file of the repository (relative to its root). tests/doc_blocks.py reads the
same map, so the code blocks of an included page are checked like those of every other page.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

INCLUDED = {
    "cluster/operators-guide.md": "cluster/README.md",
    "numerics/benchmark-results.md": "benchmarks/RESULTS.md",
}


def on_files(files, config):
    """Add each included file to the site as a page of its own."""
    root = Path(config.config_file_path).resolve().parent
    for page, source in INCLUDED.items():
        text = (root / source).read_text(encoding="utf-8")
        note = f"\n\n*This page is `{source}` of the repository, included when the site is built.*\n"
        title_end = text.find("\n")  # keep the page's own title first, then say where the text lives
        files.append(File.generated(config, page, content=text[:title_end] + note + text[title_end:]))
    return files
