"""The demo's ISO 8583 terminals: the listener beside the demo hub (``paymux demo``)."""

from __future__ import annotations

import contextlib

import typer

from paymux.iso8583.config import Iso8583Config, parse_config
from paymux.iso8583.server import Iso8583Server, running_iso8583
from paymux.runtime import Hub

DEMO_PORT = 8583

DEMO_TERMINALS = {
    "terminals": [
        {"terminal": "ATM00001", "channel": "atm-001", "service": "mts-topup"},
        {"terminal": "POS00014", "merchant": "MALL14", "channel": "term-014"},
    ]
}


def demo_config() -> Iso8583Config:
    return parse_config(DEMO_TERMINALS)


async def start_demo_listener(stack: contextlib.AsyncExitStack, hub: Hub, host: str) -> Iso8583Server:
    """The listener on ``host``, port 8583 when free (else any free one), for the stack's life."""
    try:
        return await stack.enter_async_context(running_iso8583(hub, demo_config(), host, DEMO_PORT))
    except OSError:
        return await stack.enter_async_context(running_iso8583(hub, demo_config(), host, 0))


def print_demo_listener(server: Iso8583Server) -> None:
    host, port = server.address
    typer.echo(f"  ISO 8583 terminals on {host}:{port} (ATM00001 -> atm-001, POS00014 -> term-014):")
    typer.echo(
        f"    paymux emulator terminal --port {port} --terminal ATM00001"
        " --account 9161234567 --amount 100.00 --service mts-topup"
    )
