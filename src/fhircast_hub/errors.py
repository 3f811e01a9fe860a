"""Errors the hub answers with, and their one mapping to HTTP.

The hierarchy::

    HubError                      500  unexpected failure
     ├── InvalidRequest           400  malformed or incomplete request
     │    └── VersionMismatch     400  content update against a stale versionId
     ├── Unauthorized             401  no access token, or a bad one
     ├── Forbidden                403  the token does not allow the request
     ├── NotFound                 404  unknown topic or websocket endpoint
     ├── Conflict                 409  update, select or close of a context not open
     ├── PayloadTooLarge          413  body or frame over the configured limit
     ├── UnsupportedMediaType     415  a content type the hub does not read
     └── BackendUnavailable       503  the shared state (Redis) or an
                                       authorization server cannot be reached

Every error renders as a FHIR OperationOutcome whose ``diagnostics`` says what
was expected and what arrived. 401 and 403 also carry the RFC 6750
``WWW-Authenticate: Bearer`` challenge (``invalid_token``,
``insufficient_scope``), from :meth:`HubError.headers`.
"""

from __future__ import annotations

from typing import Any, ClassVar


__all__ = [
    "BackendUnavailable",
    "Conflict",
    "Forbidden",
    "HubError",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "UnsupportedMediaType",
    "VersionMismatch",
    "operation_outcome",
]


def operation_outcome(
    diagnostics: str, *, code: str = "processing", severity: str = "error"
) -> dict[str, Any]:
    """Build a one-issue OperationOutcome."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


class HubError(Exception):
    """Base class of every error the hub reports to a client."""

    status_code: ClassVar[int] = 500
    issue_code: ClassVar[str] = "exception"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics

    def to_operation_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.diagnostics, code=self.issue_code)

    def headers(self) -> dict[str, str]:
        """Response headers that go with the error."""
        return {}


class InvalidRequest(HubError):
    status_code = 400
    issue_code = "invalid"


class VersionMismatch(InvalidRequest):
    issue_code = "conflict"


class Unauthorized(HubError):
    status_code = 401
    issue_code = "login"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class Forbidden(HubError):
    status_code = 403
    issue_code = "forbidden"

    def __init__(self, diagnostics: str, *, scope: str | None = None) -> None:
        super().__init__(diagnostics)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer error="insufficient_scope"'
        if self.scope is not None:
            challenge += f', scope="{self.scope}"'
        return {"WWW-Authenticate": challenge}


class NotFound(HubError):
    status_code = 404
    issue_code = "not-found"


class Conflict(HubError):
    status_code = 409
    issue_code = "conflict"


class PayloadTooLarge(HubError):
    status_code = 413
    issue_code = "too-long"


class UnsupportedMediaType(HubError):
    status_code = 415
    issue_code = "not-supported"


class BackendUnavailable(HubError):
    status_code = 503
    issue_code = "transient"
