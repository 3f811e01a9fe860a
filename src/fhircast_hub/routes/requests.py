"""Reading request bodies within the size limit, by content type."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from .. import jsontext
from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType


__all__ = [
    "FORM",
    "JSON_TYPES",
    "media_type",
    "read_body",
    "read_form",
    "read_json",
    "unsupported",
]

FORM = "application/x-www-form-urlencoded"
JSON_TYPES = ("application/json", "application/fhir+json")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit``.

    A compressed body is refused with 415: the hub would otherwise read it as
    malformed JSON, a misleading answer.
    """
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"expected an uncompressed body, got Content-Encoding {encoding!r}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"expected a body of at most {limit} bytes, got {int(declared)}"
        )

    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise PayloadTooLarge(
                    f"expected a body of at most {limit} bytes, got more"
                )
    except ClientDisconnect:
        # The sender went away mid-body: nothing to do, and no hub failure.
        raise InvalidRequest(
            f"expected a whole body, got {len(body)} bytes and then the "
            "connection closed"
        ) from None
    return bytes(body)


def read_json(body: bytes) -> Any:
    try:
        return jsontext.parse(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"expected a JSON body, got malformed JSON: {exc}"
        ) from exc


def read_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("expected a UTF-8 form body") from exc


def unsupported(request: Request) -> UnsupportedMediaType:
    arrived = media_type(request) or "no content type"
    return UnsupportedMediaType(
        f"expected {FORM} (subscribe) or application/json or "
        f"application/fhir+json (events), got {arrived!r}"
    )
