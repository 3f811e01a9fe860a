"""A report's shared content: Bundle updates, identity rules and selections.

Pure functions over plain JSON values, used by the context rules
(``context.py``) for ``DiagnosticReport-update`` and ``-select``. Content is
a mapping from ``Type/id`` to a resource; it is never modified in place.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidRequest


__all__ = [
    "apply_bundle",
    "drop_unknown",
    "known_references",
    "resource_reference",
    "select_references",
]

# Identifiers of these context resources may not change through an update.
_IDENTITY_TYPES = ("Patient", "ImagingStudy")


def apply_bundle(
    content: dict[str, dict[str, Any]],
    opened: list[dict[str, Any]],
    bundle: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Apply a transaction Bundle to a copy of ``content``: all entries or none.

    ``opened`` is the context array of the report's open event: its resources
    may not be deleted, nor the identifiers of its patient and study changed.
    """
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRequest("expected the updates Bundle's 'entry' to be an array")

    content = dict(content)
    protected = _context_resources(opened)
    for position, entry in enumerate(entries):
        where = f"updates Bundle entry {position}"
        if not isinstance(entry, dict):
            raise InvalidRequest(f"expected {where} to be an object")
        request = entry.get("request")
        method = request.get("method") if isinstance(request, dict) else None
        if not isinstance(method, str):
            raise InvalidRequest(f"expected {where} to have request.method")
        method = method.upper()

        if method in ("PUT", "POST"):
            resource = entry.get("resource")
            reference = resource_reference(resource)
            if reference is None:
                raise InvalidRequest(
                    f"expected {where} ({method}) to carry a resource with "
                    "resourceType and id"
                )
            assert isinstance(resource, dict)
            _check_identity(protected.get(reference), resource, where)
            content[reference] = resource
        elif method == "DELETE":
            reference = _delete_target(entry)
            if reference is None:
                raise InvalidRequest(
                    f"expected {where} (DELETE) to name its resource in fullUrl or "
                    "request.url as Type/id"
                )
            if reference in protected:
                raise InvalidRequest(
                    f"{where} deletes {reference}, which is part of the context "
                    "opened on this topic; close the context instead"
                )
            content.pop(reference, None)
        else:
            raise InvalidRequest(
                f"expected {where} to use PUT, POST or DELETE, got {method!r}"
            )
    return content


def _context_resources(opened: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The resources of the context as opened, by Type/id."""
    resources: dict[str, dict[str, Any]] = {}
    for entry in opened:
        reference = resource_reference(entry.get("resource"))
        if reference is not None:
            resources[reference] = entry["resource"]
    return resources


def _check_identity(
    opened: dict[str, Any] | None, resource: dict[str, Any], where: str
) -> None:
    if opened is None or resource.get("resourceType") not in _IDENTITY_TYPES:
        return
    # A PUT replaces the resource: leaving the identifiers out removes them.
    if resource.get("identifier") != opened.get("identifier"):
        raise InvalidRequest(
            f"{where} changes the identifiers of {resource['resourceType']}/"
            f"{resource['id']}, which identify the opened context and cannot change"
        )


def resource_reference(resource: Any) -> str | None:
    """A resource's Type/id, or None for something that is not one."""
    if not isinstance(resource, dict):
        return None
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if isinstance(resource_type, str) and isinstance(resource_id, str) and resource_id:
        return f"{resource_type}/{resource_id}"
    return None


def _delete_target(entry: dict[str, Any]) -> str | None:
    request = entry.get("request", {})
    for candidate in (entry.get("fullUrl"), request.get("url")):
        if isinstance(candidate, str) and "/" in candidate:
            parts = candidate.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] and parts[-1]:
                return f"{parts[-2]}/{parts[-1]}"
    return None


def known_references(
    content: dict[str, dict[str, Any]], opened: list[dict[str, Any]]
) -> set[str]:
    """What a select may name: the shared content and the context as opened."""
    known = set(content) | set(_context_resources(opened))
    for entry in opened:
        target = entry.get("reference", {})
        if isinstance(target, dict) and isinstance(target.get("reference"), str):
            known.add(target["reference"])
    return known


def select_references(entry: dict[str, Any]) -> list[str]:
    """References selected by one select entry, STU3 and IRA shapes alike."""
    references: list[str] = []
    for field_name in ("reference", "resource"):
        value = entry.get(field_name)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("reference"), str):
                references.append(item["reference"])
            elif (reference := resource_reference(item)) is not None:
                references.append(reference)
    return references


def drop_unknown(entry: dict[str, Any], known: set[str]) -> None:
    """Leave out of a select entry the references the hub does not know."""
    for field_name in ("reference", "resource"):
        value = entry.get(field_name)
        if isinstance(value, list):
            entry[field_name] = [
                item
                for item in value
                if set(select_references({field_name: item})) <= known
            ]
        elif (
            value is not None
            and not set(select_references({field_name: value})) <= known
        ):
            del entry[field_name]
