"""The deployment files name only settings the hub has."""

from __future__ import annotations

import re
from pathlib import Path

from fhircast_hub.config import Settings


ROOT = Path(__file__).resolve().parents[1]
KNOWN = {name.upper() for name in Settings.model_fields}


def test_helm_values_name_only_known_settings() -> None:
    values = (ROOT / "deploy/helm/fhircast-hub/values.yaml").read_text()
    block = values.split("settings:", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^  ([A-Z_]+):", block, re.MULTILINE)

    assert names
    assert set(names) <= KNOWN


def test_dockerfile_sets_only_known_settings() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    names = re.findall(r"FHIRCAST_HUB_([A-Z_]+)=", dockerfile)

    assert names
    assert set(names) <= KNOWN
