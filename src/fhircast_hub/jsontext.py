"""Reading JSON from clients: standard JSON only, and not too deeply nested.

Python's ``json`` reads ``NaN`` and ``Infinity``, which no other JSON parser
does: the hub would pass them on to subscribers that cannot read them. A
document nested deeper than the parser's recursion limit raises
RecursionError, and one just below it breaks the recursive copy and
serialization later on; so nesting is capped far below either, and far
above what a FHIR resource needs.
"""

from __future__ import annotations

import json
from typing import Any


__all__ = ["MAX_DEPTH", "parse"]

MAX_DEPTH = 100


def parse(text: str | bytes) -> Any:
    """The decoded document; ValueError saying what is wrong with it."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth_over(document, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _depth_over(document: Any, limit: int) -> bool:
    # Iterative, so that checking a deep document cannot itself recurse too far.
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
