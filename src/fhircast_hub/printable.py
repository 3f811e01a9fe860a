"""Values that reach the log must be printable.

Topics, event ids and subscriber names are logged (ids and names whole); a
line break or a terminal escape in one would forge or hide log lines, so the
hub refuses such values where they arrive.
"""

from __future__ import annotations

import unicodedata

from .errors import InvalidRequest


__all__ = ["require_printable"]

# Control characters (C0, DEL, C1) and the Unicode line and paragraph breaks.
_UNPRINTABLE = frozenset({"Cc", "Zl", "Zp"})


def require_printable(value: str, what: str) -> str:
    """``value`` itself; InvalidRequest if it holds a control character."""
    for character in value:
        if unicodedata.category(character) in _UNPRINTABLE:
            raise InvalidRequest(
                f"expected {what} without control characters or line breaks, "
                f"got one with {character!r}"
            )
    return value
