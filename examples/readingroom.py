"""What the three reading-room apps share.

Each app subscribes to one topic, follows the context it receives (patient,
study, report and the report's content) and reacts to it; this module holds
that common part: the command line, the specification's example messages
turned into fresh events, and the follow loop. The apps print only what a
user would see on screen: names, accession numbers and findings, never a
token or a whole FHIR resource.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from websockets.exceptions import WebSocketException

from fhircast_hub.client import Connection, HubClient, HubRequestError
from fhircast_hub.syncerror import utc_timestamp


__all__ = [
    "DEFAULT_HUB",
    "App",
    "ReadingRoom",
    "entry",
    "example_event",
    "main",
    "reference_of",
    "with_ids",
]

DEFAULT_HUB = "http://127.0.0.1:8000/fhircast/STU3"
DEFAULT_TOPIC = "reading-room-1"

# The FHIRcast specification's example messages live beside the repository
# (../shared/spec-examples), never copied into it; the variable points
# elsewhere.
SPEC_EXAMPLES = Path(
    os.environ.get(
        "FHIRCAST_SPEC_EXAMPLES",
        Path(__file__).resolve().parents[2] / "shared" / "spec-examples",
    )
)


def missing_spec_examples() -> str | None:
    """Why the spec's examples cannot be read, or None when they can."""
    if (SPEC_EXAMPLES / "stu3-3-3-1-Patient-open-1.json").is_file():
        return None
    return (
        f"the FHIRcast specification's example messages are not in {SPEC_EXAMPLES}; "
        "put them there (the JSON examples of HL7/fhircast-docs) or set "
        "FHIRCAST_SPEC_EXAMPLES to their folder"
    )


# Ids used in the specification's examples, replaced by fresh ones per run.
EXAMPLE_PATIENT = "503824b8-fe8c-4227-b061-7181ba6c3926"
EXAMPLE_STUDY = "e25c1d31-20a2-41f8-8d85-fe2fdeac74fd"
EXAMPLE_REPORT = "2402d3bd-e988-414b-b7f2-4322e86c9327"

FOLLOWED_EVENTS = (
    "Patient-open",
    "Patient-close",
    "ImagingStudy-open",
    "ImagingStudy-close",
    "DiagnosticReport-open",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "DiagnosticReport-close",
)


def example_event(name: str, topic: str) -> dict[str, Any]:
    """One of the spec's example messages, as a new event on ``topic``."""
    message: dict[str, Any] = json.loads((SPEC_EXAMPLES / name).read_text())
    message["id"] = str(uuid.uuid4())
    message["timestamp"] = utc_timestamp()
    message["event"]["hub.topic"] = topic
    return message


def with_ids(message: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """``message`` with every occurrence of each old id replaced by the new one.

    Replacing in the serialized text keeps references (``Patient/<id>``) and
    resource ids consistent without knowing where each one sits.
    """
    text = json.dumps(message)
    for old, new in ids.items():
        text = text.replace(old, new)
    replaced: dict[str, Any] = json.loads(text)
    return replaced


def entry(context: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    for item in context:
        if item.get("key") == key:
            return item
    return None


def reference_of(item: dict[str, Any] | None) -> str | None:
    """``Type/id`` of a context entry, whether it carries a resource or a reference."""
    if item is None:
        return None
    resource = item.get("resource")
    if isinstance(resource, dict) and "id" in resource:
        return f"{resource['resourceType']}/{resource['id']}"
    target = item.get("reference")
    if isinstance(target, dict) and isinstance(target.get("reference"), str):
        return str(target["reference"])
    return None


def patient_name(patient: dict[str, Any] | None) -> str:
    if patient is None:
        return "(unknown patient)"
    for name in patient.get("name", []):
        given = " ".join(name.get("given", []))
        if name.get("family"):
            return f"{name['family']}, {given}".rstrip(", ")
    return f"Patient/{patient.get('id', '?')}"


def study_label(study: dict[str, Any]) -> str:
    """The accession number a radiologist knows a study by."""
    for identifier in study.get("identifier", []):
        codes = [c.get("code") for c in identifier.get("type", {}).get("coding", [])]
        if "ACSN" in codes and identifier.get("value"):
            return str(identifier["value"])
    return f"ImagingStudy/{study.get('id', '?')}"


def report_label(report: dict[str, Any]) -> str:
    for identifier in report.get("identifier", []):
        if identifier.get("value"):
            return str(identifier["value"])
    return f"DiagnosticReport/{report.get('id', '?')}"


def finding_text(observation: dict[str, Any]) -> str:
    codings = observation.get("code", {}).get("coding", [{}])
    text = str(codings[0].get("display") or codings[0].get("code") or "finding")
    quantity = observation.get("valueQuantity")
    if isinstance(quantity, dict) and "value" in quantity:
        text += f" {quantity['value']:g} {quantity.get('unit', '')}".rstrip()
    return text


@dataclass
class ReadingRoom:
    """The context as one app has followed it through received events."""

    patient: dict[str, Any] | None = None
    study: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    report_version: str | None = None
    # The report's shared content: Observation/<id> -> finding text.
    findings: dict[str, str] = field(default_factory=dict)
    selected: list[str] = field(default_factory=list)

    def follow(self, name: str, event: dict[str, Any]) -> None:
        """Apply one received event to what this app shows."""
        context = event["event"]["context"]
        resource = {
            key: (entry(context, key) or {}).get("resource")
            for key in ("patient", "study", "report")
        }

        if name == "Patient-open":
            self.patient, self.study, self.report = resource["patient"], None, None
        elif name == "ImagingStudy-open":
            self.study = resource["study"]
            self.patient = resource["patient"] or self.patient
        elif name == "DiagnosticReport-open":
            self.report = resource["report"]
            self.study = resource["study"] or self.study
            self.patient = resource["patient"] or self.patient
            self.report_version = event["event"].get("context.versionId")
            self.findings, self.selected = {}, []
        elif name == "DiagnosticReport-update":
            self.report_version = event["event"].get("context.versionId")
            self._apply_updates((entry(context, "updates") or {}).get("resource", {}))
        elif name == "DiagnosticReport-select":
            self.selected = [
                ref
                for item in context
                if item.get("key") == "select"
                if (ref := reference_of(item)) is not None
            ]
        elif name == "DiagnosticReport-close":
            self.report, self.report_version = None, None
            self.findings, self.selected = {}, []
        elif name == "ImagingStudy-close":
            self.study = None
        elif name == "Patient-close":
            self.patient = self.study = self.report = None

    def _apply_updates(self, bundle: dict[str, Any]) -> None:
        for item in bundle.get("entry", []):
            method = item.get("request", {}).get("method", "").upper()
            resource = item.get("resource") or {}
            if (
                method in ("PUT", "POST")
                and resource.get("resourceType") == "Observation"
            ):
                self.findings[f"Observation/{resource['id']}"] = finding_text(resource)
            elif method == "DELETE":
                target = str(item.get("fullUrl") or item["request"].get("url", ""))
                self.findings.pop("/".join(target.split("/")[-2:]), None)


class App:
    """A subscriber that follows the reading room and reacts to it.

    Subclasses set ``tag`` and override :meth:`start`, :meth:`react` and
    :meth:`view`; the session ends when :attr:`done` is set.
    """

    tag = "APP"

    def __init__(self, client: HubClient, topic: str, *, pace: float = 0.0) -> None:
        self.client = client
        self.topic = topic
        self.pace = pace
        self.room = ReadingRoom()
        self.done = False
        self.published: list[str] = []

    def say(self, text: str) -> None:
        print(f"[{self.tag}] {text}", flush=True)

    async def publish(self, message: dict[str, Any]) -> int:
        """Send one event, after the pause that lets a person watch the demo."""
        await asyncio.sleep(self.pace)
        name = message["event"]["hub.event"]
        status = await self.client.send(message)
        self.published.append(name)
        self.say(f"-> {name} (hub answered {status})")
        return status

    async def run(self, connection: Connection) -> None:
        await self.start()
        while not self.done:
            message = await connection.next_event(timeout=None)
            name = message.get("event", {}).get("hub.event")
            if name not in FOLLOWED_EVENTS:
                continue
            self.room.follow(name, message)
            self.say(f"<- {name}: {self.view()}")
            await self.react(name, message)
            # One reading session ends when its patient is closed.
            self.done = self.done or name == "Patient-close"

    async def start(self) -> None:
        """What the app does once it follows the topic."""

    async def react(self, name: str, message: dict[str, Any]) -> None:
        """What the app does after it has followed one event."""

    def view(self) -> str:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """The app's final state, as ids and event names, for demo.py to check."""
        room = self.room
        return {
            "app": self.tag,
            "patient": reference_of({"resource": room.patient})
            if room.patient
            else None,
            "study": reference_of({"resource": room.study}) if room.study else None,
            "report": reference_of({"resource": room.report}) if room.report else None,
            "published": self.published,
        }


def parse_arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--hub", default=DEFAULT_HUB, help="hub.url (default %(default)s)"
    )
    parser.add_argument(
        "--topic",
        default=DEFAULT_TOPIC,
        help="hub.topic to follow (default %(default)s)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="seconds to pause before each event this app sends",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up after this many seconds"
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="print the final state as a SUMMARY line of JSON",
    )
    return parser.parse_args()


async def _session(app_type: type[App], arguments: argparse.Namespace) -> App:
    async with HubClient(arguments.hub) as client:
        app = app_type(client, arguments.topic, pace=arguments.pace)
        endpoint = await client.subscribe(
            arguments.topic, FOLLOWED_EVENTS, subscriber_name=f"reading-room {app.tag}"
        )
        async with client.connect(endpoint) as connection:
            app.say("ready: following the reading room")
            await app.run(connection)
        await client.unsubscribe(arguments.topic, endpoint)
    return app


def main(app_type: type[App], description: str) -> int:
    """Run one app for one reading session; 0 when it ended as it should."""
    arguments = parse_arguments(description)
    tag = app_type.tag
    if (problem := missing_spec_examples()) is not None:
        print(f"[{tag}] {problem}", flush=True)
        return 1
    try:
        app = asyncio.run(
            asyncio.wait_for(_session(app_type, arguments), arguments.timeout)
        )
    except TimeoutError:
        print(
            f"[{tag}] gave up: the session did not end within {arguments.timeout:g} s",
            flush=True,
        )
        return 1
    except HubRequestError as error:
        print(f"[{tag}] the hub refused a request: {error}", flush=True)
        return 1
    except (OSError, httpx2.HTTPError, WebSocketException) as error:
        print(f"[{tag}] cannot reach the hub at {arguments.hub}: {error}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 130

    app.say(f"final: {app.view()}")
    if arguments.summary:
        print("SUMMARY " + json.dumps(app.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit("run ehr.py, pacs_viewer.py or reporting_app.py, or demo.py")
