"""Patterns for file names, e-mail subjects and text layouts: ``{provider}_{date:%Y%m%d}.dbf``.

The syntax is Python's ``str.format`` restricted to plain names: ``{name}`` or ``{name:spec}``,
no attribute or index access (patterns come from administrators and must not reach objects).
A field without a spec is rendered the way the register renders it (``default`` callback); a field
with one goes through ``spec`` when given (a register renders amounts in its own amount format), else
through ``format()``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from typing import Any

NAME = re.compile(r"^[a-z_][a-z0-9_]*\Z")
UNSAFE_FILE_CHARS = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")


class PatternError(ValueError):
    pass


Default = Callable[[Any], str]
SpecFormat = Callable[[Any, str], str]


class _Formatter(string.Formatter):
    def __init__(self, default: Default | None, spec: SpecFormat | None) -> None:
        self.default = default
        self.spec = spec

    def get_field(self, field_name: str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if not NAME.match(field_name):
            raise PatternError(f"{{{field_name}}}: only plain lower-case names are allowed")
        if field_name not in kwargs:
            raise PatternError(f"unknown field {{{field_name}}}; known: {', '.join(sorted(kwargs))}")
        return kwargs[field_name], field_name

    def format_field(self, value: Any, format_spec: str) -> Any:
        if not format_spec and self.default is not None:
            return self.default(value)
        try:
            return self.spec(value, format_spec) if self.spec is not None else format(value, format_spec)
        except (ValueError, TypeError) as e:
            raise PatternError(f"format spec {format_spec!r} does not apply to {value!r}: {e}") from None

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            raise PatternError("conversions (!r, !s, !a) are not allowed")
        return value


def render(
    pattern: str,
    values: Mapping[str, Any],
    default: Default | None = None,
    spec: SpecFormat | None = None,
) -> str:
    """Render ``pattern`` with ``values``; raises PatternError on any mistake in the pattern."""
    try:
        return _Formatter(default, spec).vformat(pattern, (), values)
    except PatternError:
        raise
    except (ValueError, IndexError, KeyError) as e:
        raise PatternError(f"bad pattern {pattern!r}: {e}") from None


Line = Callable[[Mapping[str, Any], Default, SpecFormat], str]


def compile_line(pattern: str, names: set[str]) -> Line:
    """A fast renderer of a per-row pattern, checked once against the known ``names``."""
    parsed = list(string.Formatter().parse(pattern))
    for _lit, field, spec, conv in parsed:
        if field is None:
            continue
        if not NAME.match(field):
            raise PatternError(f"{{{field}}}: only plain lower-case names are allowed")
        if field not in names:
            raise PatternError(f"unknown field {{{field}}}; known: {', '.join(sorted(names))}")
        if conv is not None:
            raise PatternError("conversions (!r, !s, !a) are not allowed")
        if spec and "{" in spec:
            raise PatternError("nested fields in a format spec are not allowed")

    def line(values: Mapping[str, Any], default: Default, with_spec: SpecFormat) -> str:
        out: list[str] = []
        for lit, field, spec, _conv in parsed:
            out.append(lit)
            if field is None:
                continue
            v = values[field]
            if not spec:
                out.append(default(v))
                continue
            try:
                out.append(with_spec(v, spec))
            except (ValueError, TypeError) as e:
                raise PatternError(f"format spec {spec!r} does not apply to {field}={v!r}: {e}") from None
        return "".join(out)

    return line


def safe_file_name(name: str) -> str:
    """A rendered file name with path separators and control characters replaced."""
    cleaned = UNSAFE_FILE_CHARS.sub("_", name).strip().strip(".")
    if not cleaned:
        raise PatternError("the file name pattern renders to an empty name")
    return cleaned[:255]
