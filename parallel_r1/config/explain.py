"""`parallel-r1 config --explain`: every field of the configuration as a table row (dotted path, type, default,
description), generated from the pydantic models so that it cannot drift from them."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel

from parallel_r1.config.base import ConfigError

_WIDTHS = (48, 36, 28)  # column caps of path, type and default; a longer cell pushes its row's description right
_REQUIRED = object()


class FieldRow(NamedTuple):
    path: str
    type: str
    default: str
    description: str
    section: bool  # a nested section, or a list of them, whose fields follow under this path


def type_name(ann: Any) -> str:
    """A readable annotation: `int | None`, `list[str]`, `'hf' | 'vllm'`, a section's class name."""
    origin, args = get_origin(ann), get_args(ann)
    if ann is type(None):
        return "None"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    return getattr(ann, "__name__", str(ann))


def _item_model(ann: Any) -> type[BaseModel] | None:
    """The section class of a `list[Section]` annotation (batch.batches, eval.slices), else None."""
    if get_origin(ann) is list:
        (item,) = get_args(ann)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _format(value: Any) -> str:
    if value is _REQUIRED:
        return "(required)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"[{len(value)} items]"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _WIDTHS[2] else text[:_WIDTHS[2] - 1] + "…"


def field_rows(model: type[BaseModel], values: BaseModel | None = None, prefix: str = "") -> list[FieldRow]:
    """Rows of every field of `model` and, depth first, of its nested sections; defaults are read from `values`
    (the defaults a parent section gives) or, without it, from the model's own field defaults."""
    rows = []
    for name, field in model.model_fields.items():
        path, ann = f"{prefix}{name}", field.annotation
        if values is not None:
            value = getattr(values, name)
        else:
            value = _REQUIRED if field.is_required() else field.get_default(call_default_factory=True)
        nested = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        item = _item_model(ann)
        rows.append(FieldRow(path, type_name(ann), "" if nested else _format(value), field.description or "",
                             bool(nested or item)))
        if nested:
            rows += field_rows(nested, value, f"{path}.")
        elif item:
            rows += field_rows(item, None, f"{path}[].")
    return rows


def explain(root: BaseModel, section: str | None = None) -> str:
    """The table of every field of `root` or of one section (a dotted path such as `parallel.sft`)."""
    rows = field_rows(type(root), root)
    if section is not None:
        sections = [r.path for r in rows if r.section]
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r}; sections: {', '.join(sections)}")
        rows = [r for r in rows if r.path == section or r.path.startswith((f"{section}.", f"{section}[]."))]
    table = [("PATH", "TYPE", "DEFAULT", "DESCRIPTION"), *(r[:4] for r in rows)]
    widths = [min(cap, max(len(r[i]) for r in table)) for i, cap in enumerate(_WIDTHS)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
                     for r in table)
