"""Authorization settings: checked at start-up, with command-line string forms."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fhircast_hub import Settings
from fhircast_hub.auth.backend import bearer_token
from fhircast_hub.cli import main
from fhircast_hub.errors import Unauthorized


def test_lists_and_issuer_maps_have_comma_separated_string_forms() -> None:
    settings = Settings(
        auth_mode="jwt",
        auth_issuers="https://a.example.org/, https://b.example.org",
        auth_audiences="https://fhir.example.org/r4",
        auth_algorithms="RS256,ES256",
        auth_jwks_uris="https://a.example.org=https://a.example.org/keys?v=2",
    )

    assert settings.auth_issuers == ["https://a.example.org", "https://b.example.org"]
    assert settings.auth_algorithms == ["RS256", "ES256"]
    assert settings.auth_jwks_uris == {
        "https://a.example.org": "https://a.example.org/keys?v=2"
    }


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRCAST_HUB_AUTH_MODE", "introspection")
    monkeypatch.setenv("FHIRCAST_HUB_AUTH_ISSUERS", "https://a.example.org")
    monkeypatch.setenv("FHIRCAST_HUB_AUTH_CLIENT_ID", "hub")
    monkeypatch.setenv("FHIRCAST_HUB_AUTH_CLIENT_SECRET", "s3cret")

    settings = Settings()

    assert settings.auth_issuers == ["https://a.example.org"]
    assert "s3cret" not in settings.model_dump_json()


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"auth_algorithms": "HS256"}, id="hmac"),
        pytest.param({"auth_algorithms": "RS256,none"}, id="none"),
        pytest.param({"auth_mode": "jwt", "auth_audiences": "x"}, id="no-issuer"),
        pytest.param({"auth_mode": "jwt", "auth_issuers": "https://a"}, id="no-aud"),
        pytest.param(
            {"auth_mode": "introspection", "auth_issuers": "https://a"},
            id="no-client-credentials",
        ),
        pytest.param({"auth_jwks_uris": "https://a"}, id="pair-without-url"),
    ],
)
def test_incomplete_or_unsafe_settings_are_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)  # type: ignore[arg-type]


def test_the_command_line_takes_the_string_forms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "print-settings",
        "--auth-mode=jwt",
        "--auth-issuers=https://a.example.org,https://b.example.org",
        "--auth-audiences=https://fhir.example.org/r4",
    ]

    assert main(argv) == 0

    assert '"https://b.example.org"' in capsys.readouterr().out


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("Basic aHViOnNlY3JldA==", id="basic"),
        pytest.param("Bearer ", id="no-token"),
        pytest.param("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", id="bare-token"),
    ],
)
def test_bearer_token_refuses_other_headers(header: str | None) -> None:
    with pytest.raises(Unauthorized) as refused:
        bearer_token(header)
    assert "eyJ" not in refused.value.diagnostics


def test_bearer_token_takes_the_scheme_in_any_case() -> None:
    assert bearer_token("bearer abc.def") == "abc.def"
