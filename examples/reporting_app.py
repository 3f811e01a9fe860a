"""Reporting app: opens a report on the study being read, and signs it off.

When the EHR opens a study, the app opens a report on it (report, patient
and study in one ``DiagnosticReport-open``). Findings shared by other apps
through ``DiagnosticReport-update`` appear in the report; the app selects the
newest one (``DiagnosticReport-select``) and, once the selection has gone
round, closes the report.

    python examples/reporting_app.py --hub http://127.0.0.1:8000/fhircast/STU3 --topic T
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from readingroom import (
    EXAMPLE_PATIENT,
    EXAMPLE_REPORT,
    EXAMPLE_STUDY,
    App,
    entry,
    example_event,
    main,
    patient_name,
    report_label,
    study_label,
    with_ids,
)


class ReportingApp(App):
    tag = "REPORT"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ids: dict[str, str] = {}
        # What the report held when it was signed off, kept for the summary.
        self.signed: dict[str, str] = {}
        self.signed_selection: list[str] = []

    def event(self, name: str) -> dict[str, Any]:
        """A spec example about this report, carrying the context as followed."""
        message = with_ids(example_event(name, self.topic), self.ids)
        for key, resource in (
            ("study", self.room.study),
            ("patient", self.room.patient),
        ):
            item = entry(message["event"]["context"], key)
            if item is not None and "resource" in item and resource is not None:
                item["resource"] = resource
        return message

    async def react(self, name: str, message: dict[str, Any]) -> None:
        room = self.room
        if name == "ImagingStudy-open" and room.study and room.patient and not self.ids:
            self.ids = {
                EXAMPLE_REPORT: str(uuid.uuid4()),
                EXAMPLE_STUDY: room.study["id"],
                EXAMPLE_PATIENT: room.patient["id"],
            }
            self.say(f"starting a report on study {study_label(room.study)}")
            await self.publish(self.event("stu3-3-6-1-DiagnosticReport-open-1.json"))

        elif name == "DiagnosticReport-update" and room.findings and not room.selected:
            newest = list(room.findings)[-1]
            select = self.event("stu3-3-6-4-DiagnosticReport-select-1.json")
            context = select["event"]["context"]
            select["event"]["context"] = [
                *(item for item in context if item["key"] != "select"),
                {"key": "select", "reference": {"reference": newest}},
            ]
            self.say(f"selecting {room.findings[newest]}")
            await self.publish(select)

        elif name == "DiagnosticReport-select" and room.report and room.selected:
            self.signed = dict(room.findings)
            self.signed_selection = list(room.selected)
            self.say(f"signing report {report_label(room.report)}")
            close = self.event("stu3-3-6-2-DiagnosticReport-close-1.json")
            report = entry(close["event"]["context"], "report")
            assert report is not None
            report["resource"] = room.report
            await self.publish(close)

    def view(self) -> str:
        room = self.room
        if room.report is None:
            shown = "no report open"
            if room.study is not None:
                shown = f"study {study_label(room.study)} to read, " + shown
            if self.signed:
                shown += f" ({len(self.signed)} finding(s) signed)"
            return shown
        shown = (
            f"report {report_label(room.report)} for {patient_name(room.patient)}"
            f", version {str(room.report_version)[:8]}"
        )
        if not room.findings:
            return shown + ", no findings yet"
        findings = [
            text + (" [selected]" if reference in room.selected else "")
            for reference, text in room.findings.items()
        ]
        return shown + ", findings: " + "; ".join(findings)

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "signed_findings": self.signed,
            "selected": self.signed_selection,
        }


if __name__ == "__main__":
    sys.exit(main(ReportingApp, "Reporting app for the FHIRcast reading-room demo."))
