"""Exceptions raised by berg_ray.

Every error a user can cause is a subclass of :class:`BergRayError`, itself a ``ValueError``, and its message
names the bad value and what is allowed, so callers never see a traceback from deep inside torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from berg_ray.validation.redact import redact_credentials

if TYPE_CHECKING:
    from pydantic import ValidationError


class BergRayError(ValueError):
    """Base class of every user-facing berg_ray error; credentials in URLs in its message are redacted."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_credentials(arg) if isinstance(arg, str) else arg for arg in args))


class UnknownModelError(BergRayError):
    """The model id is not one berg_ray serves."""


class InvalidSessionError(BergRayError):
    """The train_session string is malformed or not one of the released scans."""


class MalformedSessionError(InvalidSessionError):
    """The train_session string does not have the form session-X_scan-Y at all."""


class ScanNotAvailableError(BergRayError):
    """A valid scan whose weights are not present in the berg_dir (or not loaded by this server)."""


class ReleaseFormatError(BergRayError):
    """A release file is missing, corrupt, or has a missing/unknown key or a wrong shape."""


class UnsafeMetadataError(ReleaseFormatError):
    """A metadata pickle asked to construct an object outside the allow-list."""


class InvalidStimulusError(BergRayError):
    """The stimulus array has the wrong shape, dtype or values."""


class InvalidSelectionError(BergRayError):
    """The unit selection (roi / field / unit_index) is malformed or selects nothing."""


class DeviceError(BergRayError):
    """The requested device does not exist on this machine."""


class StorageError(BergRayError):
    """A local path or S3 location cannot be reached, read or written (names the URI, endpoint and the fix)."""


class InputNameError(BergRayError):
    """A sweep input's file name cannot be used as a stimulus id (it is not valid UTF-8)."""


class InputLinkError(StorageError):
    """A symbolic link under a sweep's input is dangling, or leads outside the input without follow_symlinks."""


class InvalidVideoError(InvalidStimulusError):
    """An input video file cannot be decoded, or its frames have the wrong size, dtype or values."""


class PrecisionError(DeviceError):
    """The requested numeric precision is unknown or the device cannot run it."""


class KernelsError(DeviceError):
    """The requested kernel implementation is unknown, or this device or installation cannot run it."""


class InvalidArgumentError(BergRayError):
    """An option of an API call (such as ``chunk_frames``) has the wrong type or value."""


class StimulusParameterError(BergRayError):
    """A stimulus generator got a parameter out of its documented range (names the parameter and the range)."""


class AnalysisInputError(BergRayError):
    """An analysis function got responses or angles of the wrong shape or values."""


def validation_summary(error: "ValidationError", names: Mapping[str, str] | None = None, flags: bool = False) -> str:
    """One plain line naming every invalid option of a pydantic ValidationError and what it allows, in berg_ray's
    words, never the validation library's: ``--batch-size must be >= 1, got 0; --reduce must be 'none' or 'mean',
    got 'max'``. The one place every config's validation errors are worded.

    Args:
        error: the ValidationError.
        names: how to call an option, by field name (e.g. ``{"skip_frames": "--burn-in-frames"}``).
        flags: options not in ``names`` are called by their command-line flag (``batch_size`` -> ``--batch-size``),
            else by their field name (nested: ``core.max_batch``).
    """
    problems: dict[str, list[tuple[str, object]]] = {}
    for item in error.errors():
        path, member = _split_union(item["loc"])
        allowed = _allowed(item) if member is None else _member_phrase(member, item)
        problems.setdefault(_option_name(path, names or {}, flags), []).append((allowed, item.get("input")))
    return "; ".join(_problem(name, found) for name, found in problems.items())


def _split_union(loc: tuple) -> tuple[tuple, str | None]:
    """(the option's path, the union member's tag when the error is inside one member of a union type, e.g.
    ``('sessions', 'list[str]', 0)`` -> ``(('sessions',), 'list[str]')``; pydantic adds such tags to ``loc``)."""
    for i, part in enumerate(loc):
        if i and isinstance(part, str) and (part in _UNION_TAGS or set("[('\"").intersection(part)):
            return loc[:i], part if i + 1 < len(loc) else None
    return loc, None


def _member_phrase(tag: str, item: Mapping) -> str:
    """What a union member nested one level down allows: ``list[str]`` -> "a list of strings"."""
    inner = tag[tag.find("[") + 1:-1] if tag.startswith("list[") else ""
    return f"a list of {_PLURALS[inner]}" if inner in _PLURALS else _allowed(item)


_PLURALS = {"str": "strings", "int": "integers", "float": "numbers", "bool": "true/false values"}


def _option_name(path: tuple, names: Mapping[str, str], flags: bool) -> str:
    """The option's name: ``names[field]``, its flag (``--batch-size``) or its field name, then any nested path."""
    if not path:
        return ""
    head = names.get(str(path[0]), f"--{str(path[0]).replace('_', '-')}" if flags else str(path[0]))
    return head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])


_UNION_TAGS = frozenset({"int", "str", "float", "bool", "none", "list", "dict", "tuple", "set"})
_EXPECTED = {"list_type": "a list", "string_type": "a string", "int_type": "an integer", "int_parsing": "an integer",
             "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
             "bool_type": "true or false", "bool_parsing": "true or false", "dict_type": "a mapping",
             "model_type": "a mapping", "missing": "=is required", "extra_forbidden": "=is not an option here (check "
             "its spelling)"}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _allowed(item: Mapping) -> str:
    """What the option allows ("an integer", ">= 1", "'none' or 'mean'"), a whole predicate ("=is required"), or a
    validator's own message ("!...")."""
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return "!" + str(ctx["error"])
    if kind == "literal_error":
        return str(ctx.get("expected", "one of the listed values"))
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind]} {next(iter(ctx.values()), '?')}"
    if kind in ("string_too_short", "too_short"):
        return f"at least {ctx.get('min_length', 1)} long"
    if kind in ("string_too_long", "too_long"):
        return f"at most {ctx.get('max_length', '?')} long"
    return _EXPECTED.get(kind, "valid")


def _problem(name: str, found: list[tuple[str, object]]) -> str:
    """``NAME must be A or B, got VALUE``; a validator's own message as it is (after the name)."""
    own = [allowed[1:] for allowed, _ in found if allowed.startswith("!")]
    if own:
        return "; ".join(f"{name}: {message}" if name else message for message in own)
    whole = [allowed[1:] for allowed, _ in found if allowed.startswith("=")]
    if whole:
        return f"{name} {whole[0]}"
    allowed = " or ".join(dict.fromkeys(a for a, _ in found))
    from berg_ray.config import ECHO_CHARS  # here: berg_ray.config imports this module

    value = repr(found[0][1])
    return f"{name} must be {allowed}, got {value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + '...'}"


class InvalidBehaviourError(BergRayError):
    """A behaviour input (perspectives / modulations) has the wrong shape, dtype or values."""


class InvalidRecordingError(BergRayError):
    """A recordings file of ``berg-ray evaluate`` is unreadable, lacks a member, or has a wrong shape or values."""
