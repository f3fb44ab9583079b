"""How configuration problems become messages: one line each, located, never a traceback.

Value checks raise through :func:`fail` (pydantic error type ``whisperd``), which
:func:`translate` passes through as written; every other pydantic error is reworded here.
Locations print as ``folders.es.formats[2]``. YAML syntax errors become one line with
their position, and :class:`YamlLoader` reports a key written twice in one mapping.

A leaf of the config package: imports nothing from whisperd.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]


def fail(message: str) -> NoReturn:
    raise PydanticCustomError("whisperd", "{message}", {"message": message})


def show(value: Any) -> str:
    """How a bad value is quoted in a message: YAML words for YAML values."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PLAIN_KEY = re.compile(r"[\w*?/+\-]+")


def format_loc(loc: Loc) -> str:
    """``('folders', 'es', 'formats', 2)`` → ``folders.es.formats[2]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _known_keys(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (for 'did you mean')."""
    for part in loc:
        if isinstance(part, str):
            field = model.model_fields.get(part) if model else None
            model = _model_in(field.annotation) if field else None
    return [k for k in model.model_fields if k != "path"] if model else []


def translate(exc: ValidationError, model: type[BaseModel]) -> list[tuple[Loc, str]]:
    """Pydantic's errors as (location, readable message)."""
    import difflib

    found = []
    for err in exc.errors(include_url=False):
        loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
        if kind == "whisperd":
            message = err["ctx"]["message"]
        elif kind == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _known_keys(model, loc[:-1]), 1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif kind == "missing":
            message = "required"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = f"must be a mapping of key: value, got {show(value)}"
        elif kind in ("list_type", "tuple_type", "iterable_type"):
            message = f"must be a list, got {show(value)}"
        elif kind == "too_short":
            message = "must not be empty"
        elif kind == "value_error":
            message = str(err["ctx"]["error"])
        else:
            message = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {show(value)}"
        found.append((loc, message))
    return found


def line(loc: Loc, message: str) -> str:
    return f"{format_loc(loc)}: {message}" if loc else message


# --- YAML ---------------------------------------------------------------------------------


class YamlLoader(yaml.SafeLoader):
    """yaml.safe_load, plus an error for a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = (key_node.tag, key_node.value)
                if key in first:
                    seen = first[key]
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key_node.value!r} (first on line {seen + 1})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"YAML syntax error{where}: {problem}"
