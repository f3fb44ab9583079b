"""The value checks of the configuration schema: annotated types, one readable message each.

Each check accepts one value and returns it normalised (a lower-case choice, an absolute
path, a language code), or fails with a message that pydantic locates and
:mod:`daemon.config.messages` prints. The tables the values are checked against live in
:mod:`daemon.config.tables`.
"""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo

from daemon.config.messages import fail, show
from daemon.config.tables import (
    COMPUTE_TYPES,
    ENGINES,
    FORMATS,
    OFFICIAL_MODELS,
    PLACEHOLDERS,
    ComputeType,
    Engine,
    Format,
    whisper_languages,
)

# --- value checks: each raises one readable message, located by pydantic ------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(desc: str, test: Callable[[float], bool], *, integer: bool = False, null: bool = False):
    def check(value: Any) -> Any:
        if value is None and null:
            return None
        if _is_number(value) and (isinstance(value, int) or not integer) and test(value):
            return value
        fail(f"must be {desc}{' or null' if null else ''}, got {show(value)}")

    return BeforeValidator(check)


def choice_value(noun: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` lower-cased if it is one of ``choices``; else a message naming them."""
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    fail(f"{show(value)} is not {noun} (choose from {', '.join(choices)})")


def _choice(noun: str, choices: Sequence[str]):
    return BeforeValidator(lambda value: choice_value(noun, value, choices))


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    fail(f"must be true or false, got {show(value)}")


def _optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    fail(f"must be text or null, got {show(value)}")


def _device(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.strip().lower()):
        return value.strip().lower()
    fail(f"{show(value)} is not a device (use auto, cpu, cuda or cuda:N)")


def _language(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        codes, names = whisper_languages()
        if key in codes:
            return key
        if key in names:
            return names[key]
    hint = "; YAML reads a bare no as false, write 'no' in quotes" if value is False else ""
    fail(
        f"{show(value)} is not a Whisper language (use a code like 'es' or a name like "
        f"'Spanish'{hint})"
    )


def formats_before(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and any(
        isinstance(v, str) and v.strip().lower() == "all" for v in value
    ):
        if len(value) > 1:
            fail("'all' already includes every format: list it alone")
        return FORMATS
    return value


def no_repeats(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        fail("must not be empty")
    repeated = [v for i, v in enumerate(value) if v in value[:i]]
    if repeated:
        fail(f"{show(repeated[0])} is listed twice")
    return value


def _temperatures_before(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value
    if _is_number(value) and 0 <= value <= 1:
        return (value,)
    fail(f"must be a number between 0 and 1, or a list of them, got {show(value)}")


def non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        fail("must not be empty")
    return value


def _glob(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(f"must be a file name pattern like '*.mp3', got {show(value)}")
    if "/" in value:
        fail(f"{value!r} contains '/': patterns match single names, not paths")
    return value


def output_name(value: Any) -> str:
    if not isinstance(value, str):
        fail(f"must be a template like '{{stem}}', got {show(value)}")
    try:
        fields = [(f, s, c) for _, f, s, c in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        fail(f"{value!r} is not a valid template ({exc}; write {{{{ or }}}} for a brace)")
    for field, spec, conversion in fields:
        if field not in PLACEHOLDERS:
            known = " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            fail(f"unknown placeholder {{{field}}} in {value!r} (use {known})")
        if spec or conversion:
            fail(f"placeholder {{{field}}} takes no format or conversion in {value!r}")
    if "/" in value or "\\" in value:
        fail(f"{value!r} contains a slash: outputs are written next to each other, not below")
    if ".." in value:
        fail(f"{value!r} contains '..'")
    if not value.strip():
        fail("must not be empty")
    if "stem" not in {f for f, _, _ in fields}:
        fail(f"{value!r} has no {{stem}}: every file of a folder would write the same outputs")
    return value


def _ready_marker(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail_marker(value)
    if "/" in value or "\\" in value:
        fail(f"{value!r} contains a slash: the marker lies beside the file it marks")
    if "{" in value:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            fail(f"{value!r} is not a valid template ({exc})")
        if not fields <= {"name", "stem"}:
            fail(f"{value!r} may use only {{name}} (the file's name) and {{stem}}")
        if value.format(name="x", stem="x") in ("x", ""):
            fail(f"{value!r} names the file itself: add a suffix like '{{name}}.ready'")
    return value


def _fail_marker(value: Any) -> None:
    fail(f"must be a template like '{{name}}.ready' or a pattern like '*.done', got {show(value)}")


def _base(info: ValidationInfo) -> Path:
    return (info.context or {}).get("base") or Path.cwd()


def absolute(value: str | os.PathLike[str], base: Path) -> Path:
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # '~' without a home directory
        path = Path(value)
    return Path(os.path.normpath(base / path))


def _folder(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()):
        return absolute(value, _base(info))
    fail(f"must be a folder path, got {show(value)}")


def _optional_folder(value: Any, info: ValidationInfo) -> Path | None:
    return None if value is None else _folder(value, info)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_ct2_dir(path: Path) -> bool:
    """A CTranslate2 model directory (faster-whisper's format): model.bin + config.json."""
    return _is_file(path / "model.bin") and _is_file(path / "config.json")


def _model(value: Any, info: ValidationInfo) -> str:
    """A model name, an imported name, a .pt checkpoint or a CTranslate2 directory.

    Paths are stored absolute. Which engine can use which form is checked across fields
    (:func:`daemon.config.checks.job_problems`) and, for imported names, when the model is loaded.
    """
    if not isinstance(value, str) or not value.strip():
        fail(f"must be a model name like 'base' or a .pt checkpoint path, got {show(value)}")
    value = value.strip()
    if not info.context:  # built in code, not loaded: the models module checks it when used
        return value
    if value.endswith(".pt"):
        path = absolute(value, _base(info))
        if _is_file(path):
            return str(path)
        fail(f"checkpoint file {path} does not exist")
    model_dir = info.context.get("model_dir")
    if value in OFFICIAL_MODELS:
        return value
    if (
        "/" not in value
        and model_dir is not None
        and (_is_file(model_dir / f"{value}.pt") or _is_ct2_dir(model_dir / f"{value}.ct2"))
    ):
        return value
    if "/" in value or value.endswith(".ct2"):
        path = absolute(value, _base(info))
        if _is_ct2_dir(path):
            return str(path)
        if path.is_dir():
            fail(f"{path} is not a CTranslate2 model directory (no model.bin and config.json)")
    fail(
        f"{value!r} is not a Whisper model, a checkpoint file, or a model imported into "
        f"{model_dir} (see 'whisperd models list')"
    )


def _node_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value.strip()):
        return value.strip()
    fail(f"must be a name of letters, digits, '.', '_' or '-' (at most 63), got {show(value)}")


def _optional_file(value: Any, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()):
        return absolute(value, _base(info))
    fail(f"must be a file path or null, got {show(value)}")


def model_name(model: str) -> str:
    """A configured model's short name: a path's file or folder name without .pt / .ct2."""
    if model.endswith(".pt") or "/" in model:
        name = Path(model).name
        return name.removesuffix(".pt").removesuffix(".ct2") or name
    return model


Count = Annotated[int, _number("an integer ≥ 1", lambda v: v >= 1, integer=True)]
Threads = Annotated[int, _number("an integer ≥ 0", lambda v: v >= 0, integer=True)]
Milliseconds = Annotated[int, _number("an integer ≥ 0", lambda v: v >= 0, integer=True)]
OptionalRepeat = Annotated[
    int | None, _number("an integer ≥ 2", lambda v: v >= 2, integer=True, null=True)
]
OptionalCount = Annotated[
    int | None, _number("an integer ≥ 1", lambda v: v >= 1, integer=True, null=True)
]
Seconds = Annotated[float, _number("a number ≥ 0", lambda v: v >= 0)]
Positive = Annotated[float, _number("a number > 0", lambda v: v > 0)]
OptionalPositive = Annotated[float | None, _number("a number > 0", lambda v: v > 0, null=True)]
OptionalNumber = Annotated[float | None, _number("a number", lambda v: True, null=True)]
Fraction = Annotated[float, _number("a number between 0 and 1", lambda v: 0 <= v <= 1)]
OptionalFraction = Annotated[
    float | None, _number("a number between 0 and 1", lambda v: 0 <= v <= 1, null=True)
]
Flag = Annotated[bool, BeforeValidator(flag)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Device = Annotated[str, BeforeValidator(_device)]
Language = Annotated[str | None, BeforeValidator(_language)]
ModelRef = Annotated[str, BeforeValidator(_model)]
Formats = Annotated[
    tuple[Annotated[Format, _choice("a format", (*FORMATS, "all"))], ...],
    BeforeValidator(formats_before),
    AfterValidator(no_repeats),
]
Temperatures = Annotated[
    tuple[Fraction, ...], BeforeValidator(_temperatures_before), AfterValidator(non_empty)
]
Globs = Annotated[tuple[Annotated[str, BeforeValidator(_glob)], ...], AfterValidator(non_empty)]
OptionalGlobs = tuple[Annotated[str, BeforeValidator(_glob)], ...]
OutputName = Annotated[str, BeforeValidator(output_name)]
ReadyMarker = Annotated[str | None, BeforeValidator(_ready_marker)]
Folder = Annotated[Path, BeforeValidator(_folder)]
EngineName = Annotated[Engine, _choice("an engine", ENGINES)]
ComputeTypeName = Annotated[ComputeType, _choice("a compute type", COMPUTE_TYPES)]
TaskName = Annotated[
    Literal["transcribe", "translate"], _choice("a task", ("transcribe", "translate"))
]
SubtitleStyle = Annotated[
    Literal["readable", "whisper"], _choice("a subtitle style", ("readable", "whisper"))
]
PollMode = Annotated[
    Literal["auto", "always", "never"], _choice("a poll mode", ("auto", "always", "never"))
]
SuccessAction = Annotated[
    Literal["keep", "move", "delete"], _choice("an on_success action", ("keep", "move", "delete"))
]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error"],
    _choice("a log level", ("debug", "info", "warning", "error")),
]
LogFormat = Annotated[
    Literal["auto", "json", "console"], _choice("a log format", ("auto", "json", "console"))
]
OptionalFolder = Annotated[Path | None, BeforeValidator(_optional_folder)]
OptionalFile = Annotated[Path | None, BeforeValidator(_optional_file)]
NodeName = Annotated[str | None, BeforeValidator(_node_name)]
BackendName = Annotated[
    Literal["sqlite", "postgresql"], _choice("a ledger backend", ("sqlite", "postgresql"))
]
ModelRefs = tuple[ModelRef, ...]


class Section(BaseModel):
    """The base of every settings model: frozen (settings are derived, never mutated) and
    strict (an unknown key is an error, not silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
