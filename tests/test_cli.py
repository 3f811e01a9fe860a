"""The fhircast-hub command, as an operator runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from conftest import free_port
from fhircast_hub.config import Settings


SRC = Path(__file__).resolve().parents[1] / "src"


def _environment(**variables: str) -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(SRC), **variables}
    return environment


def test_print_settings_takes_options_over_environment() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fhircast_hub", "print-settings", "--port", "9123"],
        env=_environment(FHIRCAST_HUB_PORT="7000", FHIRCAST_HUB_LEASE_DEFAULT="77"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    settings = json.loads(result.stdout)
    assert settings["port"] == 9123
    assert settings["lease_default"] == 77


def test_every_setting_is_a_command_line_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fhircast_hub", "serve", "--help"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in result.stdout


def test_every_setting_is_documented() -> None:
    documentation = (SRC.parent / "docs" / "configuration.md").read_text()

    for name in Settings.model_fields:
        assert f"`FHIRCAST_HUB_{name.upper()}`" in documentation, name


def test_serve_runs_the_hub_until_interrupted() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fhircast_hub", "serve", "--port", str(port)],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx2.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "the hub did not start"
                assert process.poll() is None, "the hub exited before it started"
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)

    assert process.returncode == 0
    assert "hub ready" in output


def test_boolean_settings_are_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fhircast_hub", "print-settings", "--ira-mode"],
        env=_environment(FHIRCAST_HUB_WEBHOOK_ALLOW_HTTP="true"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    turned_off = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhircast_hub",
            "print-settings",
            "--no-webhook-allow-http",
        ],
        env=_environment(FHIRCAST_HUB_WEBHOOK_ALLOW_HTTP="true"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert json.loads(result.stdout)["ira_mode"] is True
    assert json.loads(result.stdout)["webhook_allow_http"] is True
    assert json.loads(turned_off.stdout)["webhook_allow_http"] is False


def test_a_misspelt_environment_variable_is_reported() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fhircast_hub", "print-settings"],
        env=_environment(FHIRCAST_HUB_REDIS_ULR="redis://127.0.0.1:6379/0"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert "FHIRCAST_HUB_REDIS_ULR is not a setting" in result.stderr
    assert json.loads(result.stdout)["redis_url"] is None
