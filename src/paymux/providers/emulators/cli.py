"""``paymux emulator ...``: run provider emulators from the command line.

The main CLI mounts :data:`emulator_app`; every emulated protocol adds one command here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from paymux.providers.emulators.behaviour import EmulatorConfig

emulator_app = typer.Typer(
    help="Run provider emulators: real HTTP servers with scriptable latency, errors and downtime.",
    no_args_is_help=True,
)


@emulator_app.callback()
def _emulators() -> None:
    """Provider emulators for tests and demos (they listen on 127.0.0.1 by default)."""


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> EmulatorConfig:
    """An :class:`EmulatorConfig` from a YAML or JSON file (or the defaults), with ``overrides`` applied.

    Numbers with a fraction in a JSON file are read as decimals, never as floats.
    """
    data: Any = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        data = (
            json.loads(text, parse_float=Decimal) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        )
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of emulator settings")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return EmulatorConfig.model_validate(data)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        readable=True,
        help="YAML or JSON file with the emulator settings (accounts, downtime, ...).",
    ),
]
HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]
LatencyOption = Annotated[int | None, typer.Option("--latency-ms", min=0, help="Base delay of every answer.")]
TemporaryOption = Annotated[
    str | None, typer.Option("--temporary-error-rate", help='Probability (e.g. "0.05") of a temporary error.')
]
FatalOption = Annotated[
    str | None, typer.Option("--fatal-error-rate", help='Probability (e.g. "0.01") of a fatal error.')
]
LostOption = Annotated[
    str | None,
    typer.Option("--lost-response-rate", help="Probability that a pay is done but its answer is lost."),
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed for reproducible random outcomes.")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="PAYMUX_EMULATOR_TOKEN", help="Require this bearer token.")
]


def _config_or_exit(path: Path | None, overrides: dict[str, Any]) -> EmulatorConfig:
    try:
        return load_config(path, overrides)
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        typer.echo(f"invalid emulator configuration: {exc}", err=True)
        raise typer.Exit(2) from None


@emulator_app.command("jsonhttp")
def jsonhttp(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8101,
    config: ConfigOption = None,
    latency_ms: LatencyOption = None,
    temporary_error_rate: TemporaryOption = None,
    fatal_error_rate: FatalOption = None,
    lost_response_rate: LostOption = None,
    seed: SeedOption = None,
    token: TokenOption = None,
) -> None:
    """Emulate a provider speaking the generic JSON/HTTP protocol (POST /check, /pay, /status)."""
    from paymux.providers.emulators.jsonhttp import create_app
    from paymux.providers.emulators.server import serve_emulator

    settings = _config_or_exit(
        config,
        {
            "latency_ms": latency_ms,
            "temporary_error_rate": temporary_error_rate,
            "fatal_error_rate": fatal_error_rate,
            "lost_response_rate": lost_response_rate,
            "seed": seed,
            "token": token,
        },
    )
    typer.echo(f"JSON/HTTP emulator on http://{host}:{port} (control endpoints under /_emulator/)")
    serve_emulator(create_app(settings), host, port)
