"""MkDocs hook: the configuration reference, generated from berg_ray/config/ every time the site is built.

``reference/config.md`` holds the marker ``<!-- config-reference -->``; this hook replaces it with, per module of
berg_ray.config, every pydantic model (each field's type, default, bounds and description) and every constant
(its value and the comment beside or above it in the source). Nothing is copied by hand, so it cannot go stale.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

MARKER = "<!-- config-reference -->"
PAGE = "reference/config.md"
MODULES = ("model", "storage", "serve", "sweep", "experiments", "mei", "cluster")
MAX_VALUE_CHARS = 70


def on_config(config):
    """Import berg_ray from the repository being built, not from wherever the environment installed it."""
    root = str(Path(config.config_file_path).resolve().parent)
    if sys.path[0] != root:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker {MARKER}; the configuration reference has nowhere to go")
    return markdown.replace(MARKER, config_reference())


def config_reference() -> str:
    """Markdown for every module of berg_ray.config, in MODULES order."""
    return "\n\n".join(_module_section(importlib.import_module(f"berg_ray.config.{name}")) for name in MODULES)


def _module_section(module) -> str:
    from pydantic import BaseModel

    summary = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"## `{module.__name__}`", "", summary, ""]
    models = [v for v in vars(module).values()
              if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == module.__name__]
    for model in models:
        lines += _model_table(model)
    constants = _constants(module)
    if constants:
        lines += ["### Constants", "", "| name | value | meaning |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | `{_cell(value)}` | {_cell(comment)} |" for name, value, comment in constants]
    return "\n".join(lines)


def _model_table(model) -> list[str]:
    doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
    lines = [f"### {model.__name__}", "", doc, "", "| field | type | default | bounds | meaning |",
             "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        bounds = ", ".join(_bound(m) for m in field.metadata if _bound(m))
        lines.append(f"| `{name}` | `{_type_name(field.annotation)}` | {_default(field)} | {bounds} | "
                     f"{_cell(field.description or '')} |")
    return lines + [""]


def _type_name(annotation) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace(" | ", " or ")


def _default(field) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            defaults = type(value)()
            changed = {k: v for k, v in value.model_dump().items() if getattr(defaults, k) != v}
            return f"`{type(value).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})`"
        return f"`{_cell(repr(value))}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{_cell(repr(field.default))}`"


def _bound(metadata) -> str:
    for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >=")):
        if getattr(metadata, attribute, None) is not None:
            return f"{symbol} {getattr(metadata, attribute)}"
    return ""


def _constants(module) -> list[tuple[str, str, str]]:
    """(name, value, comment) of each public upper-case module-level assignment, in source order."""
    source = Path(module.__file__).read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.parse("\n".join(source)).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        for target in targets:
            name = getattr(target, "id", "")
            if name.isupper() and not name.startswith("_") and hasattr(module, name):
                found.append((name, _short(repr(getattr(module, name))), _comment(source, node)))
    return found


def _comment(source: list[str], node) -> str:
    """The comment at the end of the assignment's last line, else the comment lines right above it."""
    last = source[node.end_lineno - 1]
    if "#" in last and not last.rstrip().endswith(("'", '"')):
        return last.split("#", 1)[1].strip()
    above, index = [], node.lineno - 2
    while index >= 0 and source[index].lstrip().startswith("#"):
        above.insert(0, source[index].lstrip()[1:].strip())
        index -= 1
    return " ".join(above)


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
