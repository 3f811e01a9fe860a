"""Keeping secrets in request paths out of the server's own log lines.

uvicorn logs each request's path: ``/ws/{endpoint}`` and ``{hub.url}/{topic}``
carry an endpoint id or a topic, which act as secrets, and a query string may
carry anything (an access token, for clients that put it there). The filter
shortens those path segments to their first 8 characters, as the hub's own
log lines do, and hides query strings.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG


__all__ = ["RedactPaths", "redact_path", "uvicorn_log_config"]

_SECRET_SEGMENT = re.compile(
    r"^(/ws/|/(?:fhircast/STU[23]|api/hub)/)(?!\.well-known/)(.{8})(.+)$"
)


def redact_path(text: str) -> str:
    """A request path with its topic or endpoint id shortened, query hidden."""
    if not text.startswith("/"):
        return text
    path, question, _ = text.partition("?")
    path = _SECRET_SEGMENT.sub(r"\1\2...", path)
    return path + ("?..." if question else "")


class RedactPaths(logging.Filter):
    """Redacts the request paths among a log record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_path(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`RedactPaths` on its handlers."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_paths"] = {"()": RedactPaths}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_paths")
    return config
