"""EHR simulator: opens a patient and the patient's imaging study, closes both.

The worklist opens the study once the patient is open, and moves on (closing
study and patient) when the radiologist closes the report on that study.

    python examples/ehr.py --hub http://127.0.0.1:8000/fhircast/STU3 --topic T
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from readingroom import (
    EXAMPLE_PATIENT,
    EXAMPLE_STUDY,
    App,
    example_event,
    main,
    patient_name,
    study_label,
    with_ids,
)


class Ehr(App):
    tag = "EHR"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Fresh ids per session, so runs never collide on a shared hub.
        self.ids = {
            EXAMPLE_PATIENT: str(uuid.uuid4()),
            EXAMPLE_STUDY: str(uuid.uuid4()),
        }
        self.patient_open = self.event("stu3-3-3-1-Patient-open-1.json")

    def event(self, name: str) -> dict[str, Any]:
        return with_ids(example_event(name, self.topic), self.ids)

    async def start(self) -> None:
        patient = self.patient_open["event"]["context"][0]["resource"]
        self.say(f"opening the chart of {patient_name(patient)}")
        await self.publish(self.patient_open)

    async def react(self, name: str, message: dict[str, Any]) -> None:
        if name == "Patient-open" and message["id"] == self.patient_open["id"]:
            await self.publish(self.event("stu3-3-5-1-ImagingStudy-open-1.json"))
            return

        study = self.room.study
        if name == "DiagnosticReport-close" and study is not None:
            if study["id"] != self.ids[EXAMPLE_STUDY]:
                return
            self.say("report closed: the worklist moves on")
            await self.publish(self.event("stu3-3-5-2-ImagingStudy-close-1.json"))
            await self.publish(self.event("stu3-3-3-2-Patient-close-1.json"))

    def view(self) -> str:
        room = self.room
        if room.patient is None:
            return "no patient open"
        shown = f"chart of {patient_name(room.patient)} open"
        if room.study is not None:
            shown += f"; worklist on study {study_label(room.study)}"
        return shown


if __name__ == "__main__":
    sys.exit(main(Ehr, "EHR simulator for the FHIRcast reading-room demo."))
