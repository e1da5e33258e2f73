"""Reading YAML that came in a request: libyaml's parser where PyYAML has it, and bounded work.

Aliases let a short text stand for a huge structure (a "billion laughs": each level repeats the one
before), which costs nothing to load but everything to validate. :func:`expanded_values` counts a
structure's values the way a validator visits them and stops at a limit.
"""

from __future__ import annotations

from typing import Any

import yaml

try:  # PyYAML's safe loader on libyaml when it was built with it (about five times faster)
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - a PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]

FIELD_CHARS = 64 * 1024  # a YAML field of a back-office form


class TooMuchYaml(yaml.YAMLError):
    """A text too long to read, or one whose aliases expand it too far."""


def expanded_values(data: object, limit: int) -> int:
    """The number of values in ``data`` (keys, values, items: a value shared through an alias counted
    each time it is used); raises TooMuchYaml past ``limit``."""
    seen = 0
    stack: list[object] = [data]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            raise TooMuchYaml(f"the text expands to more than {limit} values (aliases used too many times)")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def release_nodes(root: yaml.Node | None) -> None:
    """Free a composed document's nodes one at a time (see ``offload.py``: dropping the root frees
    them all in one call that keeps the interpreter lock for as long)."""
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, yaml.Node):
            continue
        value = node.value
        if isinstance(value, list):
            node.value = []
            for item in value:
                if isinstance(item, tuple):
                    stack.extend(item)
                else:
                    stack.append(item)


def load_field(text: str, max_chars: int = FIELD_CHARS) -> Any:
    """``yaml.safe_load`` of a form field: at most ``max_chars`` characters, expanding to no more values
    than it has characters. Raises ``yaml.YAMLError`` (TooMuchYaml for those limits)."""
    if len(text) > max_chars:
        raise TooMuchYaml(f"the text is longer than {max_chars} characters")
    data = yaml.load(text, Loader=SafeLoader)  # safe: a SafeLoader
    expanded_values(data, len(text) + 100)
    return data
