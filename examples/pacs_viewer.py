"""PACS viewer: shows the study the EHR opens and measures on it.

When a report is opened on the study it shows, the viewer adds a measurement
to the report's content with ``DiagnosticReport-update``, made against the
``context.versionId`` it received, and highlights whatever the reporting app
selects.

    python examples/pacs_viewer.py --hub http://127.0.0.1:8000/fhircast/STU3 --topic T
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from readingroom import (
    EXAMPLE_PATIENT,
    EXAMPLE_REPORT,
    App,
    entry,
    example_event,
    finding_text,
    main,
    patient_name,
    study_label,
    with_ids,
)


# The Observation of the spec's update example, reused as the measurement.
EXAMPLE_OBSERVATION = "40afe766-3628-4ded-b5bd-925727c013b3"


class PacsViewer(App):
    tag = "PACS"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.measurements: list[str] = []
        # Kept past the report's close, for the summary.
        self.highlighted: list[str] = []

    async def react(self, name: str, message: dict[str, Any]) -> None:
        if (
            name == "DiagnosticReport-open"
            and self.room.study
            and not self.measurements
        ):
            await self.publish(self.measurement())
        elif name == "DiagnosticReport-select":
            self.highlighted = list(self.room.selected)

    def measurement(self) -> dict[str, Any]:
        """A DiagnosticReport-update adding one measured finding to the report."""
        room = self.room
        assert room.report is not None and room.patient is not None
        assert room.study is not None
        observation_id = str(uuid.uuid4())
        update = with_ids(
            example_event("stu3-3-6-3-DiagnosticReport-update-1.json", self.topic),
            {
                EXAMPLE_REPORT: room.report["id"],
                EXAMPLE_PATIENT: room.patient["id"],
                EXAMPLE_OBSERVATION: observation_id,
            },
        )
        update["event"]["context.versionId"] = room.report_version

        # The example also PUTs another study and cites an unknown finding;
        # the viewer keeps only its own measurement and the report's results.
        bundle = entry(update["event"]["context"], "updates")
        assert bundle is not None
        entries = [
            item
            for item in bundle["resource"]["entry"]
            if item["resource"]["resourceType"] in ("Observation", "DiagnosticReport")
        ]
        observation, report = (item["resource"] for item in entries)
        observation["identifier"][0]["value"] = str(uuid.uuid4())
        observation["partOf"] = {"reference": f"ImagingStudy/{room.study['id']}"}
        observation["valueQuantity"] = {
            "value": 12,
            "unit": "mm",
            "system": "http://unitsofmeasure.org",
            "code": "mm",
        }
        report["imagingStudy"] = [{"reference": f"ImagingStudy/{room.study['id']}"}]
        report["result"] = [
            {
                "reference": f"Observation/{observation_id}",
                "display": finding_text(observation),
            }
        ]
        bundle["resource"]["entry"] = entries

        self.measurements.append(f"Observation/{observation_id}")
        self.say(f"measured {finding_text(observation)}; sharing it with the report")
        return update

    def view(self) -> str:
        room = self.room
        if room.study is None:
            if room.patient is not None:
                return f"patient {patient_name(room.patient)}, no study shown"
            return "no study shown"
        shown = (
            f"showing study {study_label(room.study)} "
            f"for patient {patient_name(room.patient)}"
        )
        marks = [
            text + (" (highlighted)" if reference in room.selected else "")
            for reference, text in room.findings.items()
        ]
        if marks:
            shown += "; measurements: " + ", ".join(marks)
        return shown

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "measurements": self.measurements,
            "highlighted": self.highlighted,
        }


if __name__ == "__main__":
    sys.exit(main(PacsViewer, "PACS viewer for the FHIRcast reading-room demo."))
