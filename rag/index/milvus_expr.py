"""Milvus boolean expressions built from values, never by pasting user text into them.

milvus-lite accepts no filter templates (``filter_params``), so every value is written as a literal here: strings
as double-quoted literals with ``\\`` and ``"`` escaped and control characters refused (a document id or filter
value cannot close the literal and append ``or 1==1``), integers through ``int()``. Field names are constants
of this package, checked against a pattern anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.core.errors import InvalidInputError

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LITERAL = 4096  # characters of one string value


def _field(name: str) -> str:
    if not _FIELD.match(name):
        raise ValueError(f"not a field name: {name!r}")
    return name


def literal(value: str) -> str:
    """``value`` as a Milvus string literal: ``"..."`` with backslash and double quote escaped."""
    if not isinstance(value, str):
        raise InvalidInputError(f"expected text, got {type(value).__name__}")
    if len(value) > MAX_LITERAL:
        raise InvalidInputError(f"value of {len(value)} characters is too long (limit {MAX_LITERAL})")
    if _CONTROL.search(value):
        raise InvalidInputError(f"value {value[:80]!r} holds a control character")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def eq(field: str, value: str) -> str:
    """``field == "value"``."""
    return f"{_field(field)} == {literal(value)}"


def in_strings(field: str, values: Iterable[str], negate: bool = False) -> str:
    """``field in ["a", "b"]`` (``not in`` when ``negate``; with no values that is "", no condition)."""
    vals = list(dict.fromkeys(values))
    if not vals:
        if negate:
            return ""
        raise ValueError("an empty `in` list: the caller must not search at all")
    op = "not in" if negate else "in"
    return f"{_field(field)} {op} [{', '.join(literal(v) for v in vals)}]"


def in_ints(field: str, values: Iterable[int]) -> str:
    """``field in [1, 2, 3]`` over integers (each through ``int()``)."""
    return f"{_field(field)} in [{','.join(str(int(v)) for v in values)}]"


def both(*exprs: str) -> str:
    """The conjunction of the non-empty expressions, each in brackets."""
    parts = [e for e in exprs if e]
    return " and ".join(f"({e})" for e in parts)
