"""The ``fhircast-hub`` command.

``fhircast-hub serve`` starts the hub under uvicorn. Its options mirror the
:class:`~fhircast_hub.config.Settings` fields one to one (``--lease-default``
is ``FHIRCAST_HUB_LEASE_DEFAULT``); an option given on the command line wins
over the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from . import __version__
from .app import create_app
from .config import Settings, unknown_variables
from .logredact import uvicorn_log_config


__all__ = ["main", "serve"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help()
        return 2

    overrides = {
        name: value
        for name, value in vars(arguments).items()
        if name in Settings.model_fields and value is not None
    }
    for variable in unknown_variables(os.environ):
        print(
            f"warning: {variable} is not a setting of the hub and is ignored; "
            "see fhircast-hub serve --help",
            file=sys.stderr,
        )
    settings = Settings(**overrides)
    if arguments.command == "print-settings":
        print(settings.model_dump_json(indent=2))
        return 0
    serve(settings)
    return 0


def serve(settings: Settings) -> None:
    """Run the hub until interrupted."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.keepalive_interval,
        ws_ping_timeout=settings.keepalive_interval,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhircast-hub", description="A FHIRcast hub.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command")
    for name, help_text in (
        ("serve", "run the hub"),
        ("print-settings", "print the settings in force, as JSON"),
    ):
        command = commands.add_parser(name, help=help_text)
        for field_name, field in Settings.model_fields.items():
            help_text = (
                f"{field.description} (env FHIRCAST_HUB_{field_name.upper()}; "
                f"default {field.default!r})"
            )
            option = "--" + field_name.replace("_", "-")
            if field.annotation is bool:
                # --ira-mode turns a setting on, --no-ira-mode off.
                command.add_argument(
                    option,
                    dest=field_name,
                    default=None,
                    action=argparse.BooleanOptionalAction,
                    help=help_text,
                )
                continue
            command.add_argument(
                option,
                dest=field_name,
                default=None,
                metavar=field_name.upper(),
                help=help_text,
            )
    return parser


if __name__ == "__main__":
    sys.exit(main())
