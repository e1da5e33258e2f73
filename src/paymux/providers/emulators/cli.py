"""``paymux emulator ...``: run provider emulators from the command line.

The main CLI mounts :data:`emulator_app`; every emulated protocol adds one command here.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from paymux.providers.emulators.behaviour import EmulatorConfig

if TYPE_CHECKING:
    from starlette.types import ASGIApp

M = TypeVar("M", bound=BaseModel)

emulator_app = typer.Typer(
    help="Run provider and bank emulators: real HTTP servers with scriptable latency, errors and downtime.",
    no_args_is_help=True,
)


@emulator_app.callback()
def _emulators() -> None:
    """Provider emulators for tests and demos (they listen on 127.0.0.1 by default)."""


def load_config(
    path: Path | None,
    overrides: dict[str, Any] | None = None,
    model: type[M] = EmulatorConfig,  # type: ignore[assignment]
) -> M:
    """A ``model`` (an :class:`EmulatorConfig` by default) from a YAML or JSON file (or the defaults),
    with ``overrides`` applied.

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
    return model.model_validate(data)


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


PortOption = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")]


def _config_or_exit(
    path: Path | None,
    overrides: dict[str, Any],
    model: type[M] = EmulatorConfig,  # type: ignore[assignment]
) -> M:
    try:
        return load_config(path, overrides, model)
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        typer.echo(f"invalid emulator configuration: {exc}", err=True)
        raise typer.Exit(2) from None


@dataclass(frozen=True, slots=True)
class BehaviourOptions:
    """The options every emulator command takes: ``--config`` and the behaviour overrides."""

    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, **extra: Any) -> EmulatorConfig:
        """The emulator's config (the file, then the options, then ``extra``); exits 2 when invalid."""
        return _config_or_exit(self.config, {**self.overrides, **extra})


_OPTION_TYPES: dict[str, Any] = {
    "config": ConfigOption,
    "latency_ms": LatencyOption,
    "temporary_error_rate": TemporaryOption,
    "fatal_error_rate": FatalOption,
    "lost_response_rate": LostOption,
    "seed": SeedOption,
}


def behaviour_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give an emulator command the shared options in place of its ``behaviour`` parameter.

    The command's ``behaviour: BehaviourOptions`` parameter becomes ``--config``, ``--latency-ms``,
    ``--temporary-error-rate``, ``--fatal-error-rate``, ``--lost-response-rate`` and ``--seed`` (in
    that place of the command's options), handed to it as one :class:`BehaviourOptions`.
    """
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name != "behaviour":
            parameters.append(parameter)
            continue
        parameters += [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=kind)
            for name, kind in _OPTION_TYPES.items()
        ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        config = kwargs.pop("config")
        overrides = {name: kwargs.pop(name) for name in _OPTION_TYPES if name != "config"}
        command(behaviour=BehaviourOptions(config, overrides), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return wrapper


def _serve(app: ASGIApp, title: str, host: str, port: int, path: str = "", notes: Iterable[str] = ()) -> None:
    """Say where the emulator listens, then serve it until interrupted."""
    from paymux.providers.emulators.server import serve_emulator

    typer.echo(f"{title} emulator on http://{host}:{port}{path} (control endpoints under /_emulator/)")
    for note in notes:
        typer.echo(note)
    serve_emulator(app, host, port)


@emulator_app.command("jsonhttp")
@behaviour_options
def jsonhttp(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8101,
    behaviour: BehaviourOptions = BehaviourOptions(),
    token: TokenOption = None,
) -> None:
    """Emulate a provider speaking the generic JSON/HTTP protocol (POST /check, /pay, /status)."""
    from paymux.providers.emulators.jsonhttp import create_app

    _serve(create_app(behaviour.settings(token=token)), "JSON/HTTP", host, port)


@emulator_app.command("osmp")
@behaviour_options
def osmp(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8111,
    behaviour: BehaviourOptions = BehaviourOptions(),
    basic_auth: Annotated[
        str | None,
        typer.Option(
            "--basic-auth",
            envvar="PAYMUX_EMULATOR_BASIC_AUTH",
            help="Require HTTP basic auth with these credentials, given as user:password.",
        ),
    ] = None,
    no_check_first: Annotated[
        bool, typer.Option("--no-check-first", help="Accept a pay whose txn_id no check registered.")
    ] = False,
) -> None:
    """Emulate a provider speaking OSMP, the QIWI provider protocol (GET or POST /, XML answers)."""
    from paymux.providers.emulators.osmp import create_app

    if basic_auth is not None and ":" not in basic_auth:
        typer.echo("--basic-auth must be given as user:password", err=True)
        raise typer.Exit(2)
    app = create_app(behaviour.settings(token=basic_auth), require_check=not no_check_first)
    _serve(app, "OSMP", host, port, "/")


@emulator_app.command("cyberplat")
@behaviour_options
def cyberplat(
    key: Annotated[
        Path,
        typer.Option(
            "--key", exists=True, dir_okay=False, readable=True, help="The emulator's private key (PEM)."
        ),
    ],
    peer_key: Annotated[
        Path,
        typer.Option(
            "--peer-key", exists=True, dir_okay=False, readable=True, help="The hub's public key (PEM)."
        ),
    ],
    host: HostOption = "127.0.0.1",
    port: PortOption = 8121,
    key_serial: Annotated[str, typer.Option("--key-serial", help="Serial of the emulator's key.")] = "2",
    peer_key_serial: Annotated[
        str | None, typer.Option("--peer-key-serial", help="Require requests signed with this key serial.")
    ] = None,
    passphrase: Annotated[
        str | None,
        typer.Option("--passphrase", envvar="PAYMUX_EMULATOR_KEY_PASSPHRASE", help="Passphrase of --key."),
    ] = None,
    no_check_first: Annotated[
        bool, typer.Option("--no-check-first", help="Accept a pay whose session was never checked.")
    ] = False,
    behaviour: BehaviourOptions = BehaviourOptions(),
) -> None:
    """Emulate a provider speaking the Cyberplat-style signed protocol (check / pay / status URLs)."""
    from paymux.providers.cyberplat_envelope import KeyProblem
    from paymux.providers.emulators.cyberplat import create_app, provider_urls

    settings = behaviour.settings()
    try:
        app = create_app(
            settings,
            private_key=key.read_bytes(),
            peer_public_key=peer_key.read_bytes(),
            key_serial=key_serial,
            peer_key_serial=peer_key_serial,
            passphrase=passphrase,
            require_check=not no_check_first,
        )
    except KeyProblem as exc:
        typer.echo(f"cannot use the keys: {exc}", err=True)
        raise typer.Exit(2) from None
    urls = provider_urls(f"http://{host}:{port}")
    _serve(app, "Cyberplat", host, port, notes=[f"  {name}: {url}" for name, url in urls.items()])


@emulator_app.command("cyberplat-keys")
def cyberplat_keys(
    directory: Annotated[Path, typer.Argument(file_okay=False, help="Where to write the key files.")],
    passphrase: Annotated[
        str | None,
        typer.Option("--passphrase", envvar="PAYMUX_KEY_PASSPHRASE", help="Encrypt the hub's private key."),
    ] = None,
    bits: Annotated[int, typer.Option("--bits", min=1024, max=8192, help="RSA key size.")] = 2048,
    ipriv_format: Annotated[
        bool,
        typer.Option("--ipriv", help="Write iPriv key files (the real service's format) instead of PEM."),
    ] = False,
) -> None:
    """Generate RSA key pairs for the hub and an emulated Cyberplat provider (for tests and demos)."""
    from paymux.providers.cyberplat_envelope import generate_key_pair, write_key_pair

    if ipriv_format:
        if not passphrase:
            typer.echo("iPriv secret keys are always encrypted: give --passphrase", err=True)
            raise typer.Exit(2)
        _ipriv_keys(directory, passphrase, bits)
        return
    hub_key, hub_pub = write_key_pair(directory, "hub", generate_key_pair(bits, passphrase))
    provider_key, provider_pub = write_key_pair(directory, "provider", generate_key_pair(bits))
    typer.echo(f"wrote {hub_key}, {hub_pub}, {provider_key} and {provider_pub}")
    typer.echo("provider config (catalog):")
    typer.echo(f"  private_key_file: {hub_key.resolve()}")
    if passphrase:
        typer.echo("  private_key_passphrase: <the passphrase>")
    typer.echo(f"  provider_public_key_file: {provider_pub.resolve()}")
    typer.echo("  key_serial: '1'")
    typer.echo("  provider_key_serial: '2'")
    typer.echo(
        f"emulator: paymux emulator cyberplat --key {provider_key} --peer-key {hub_pub} "
        "--key-serial 2 --peer-key-serial 1"
    )


def _ipriv_keys(directory: Path, passphrase: str, bits: int) -> None:
    """hub.key and provider.key (secret, NM) and pubkeys.key with both public keys (NS)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from paymux.providers import ipriv

    directory.mkdir(parents=True, exist_ok=True)
    public_docs = []
    for name, serial in (("hub", 1), ("provider", 2)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        path = directory / f"{name}.key"
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_bytes(ipriv.secret_key_file(key, name, serial, passphrase))
        signer = ipriv.IprivSecretKey(name, serial, key)
        public_docs.append(ipriv.public_key_document(key.public_key(), name, serial, signer))
    pubkeys = directory / "pubkeys.key"
    pubkeys.write_bytes(ipriv.public_key_file(public_docs))
    typer.echo(f"wrote {directory / 'hub.key'}, {directory / 'provider.key'} and {pubkeys} (iPriv format)")
    typer.echo("provider config (catalog):")
    typer.echo(f"  private_key_file: {(directory / 'hub.key').resolve()}")
    typer.echo("  private_key_passphrase: <the passphrase>")
    typer.echo(f"  provider_public_key_file: {pubkeys.resolve()}")
    typer.echo("  key_serial: '1'")
    typer.echo("  provider_key_serial: '2'")
    typer.echo(
        f"emulator: paymux emulator cyberplat --key {directory / 'provider.key'} --peer-key {pubkeys} "
        "--key-serial 2 --peer-key-serial 1 --passphrase <the passphrase>"
    )


@emulator_app.command("bank")
def bank(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8131,
    config: ConfigOption = None,
    latency_ms: LatencyOption = None,
    lost_answer_rate: Annotated[
        str | None,
        typer.Option(
            "--lost-answer-rate", help='Probability (e.g. "0.05") that a debit is done, its answer lost.'
        ),
    ] = None,
    seed: SeedOption = None,
    token: TokenOption = None,
    hmac_secret: Annotated[
        str | None,
        typer.Option(
            "--hmac-secret",
            envvar="PAYMUX_EMULATOR_HMAC_SECRET",
            help="Require requests signed with this secret.",
        ),
    ] = None,
) -> None:
    """Emulate a bank's core system speaking the JSON/HTTP funding protocol (debits, refunds, status)."""
    from paymux.funding.emulator import BankConfig, create_app
    from paymux.money import format_amount

    overrides = {
        "latency_ms": latency_ms,
        "lost_answer_rate": lost_answer_rate,
        "seed": seed,
        "token": token,
        "hmac_secret": hmac_secret,
    }
    settings = _config_or_exit(config, overrides, BankConfig)
    accounts = [
        f"  {name}: {format_amount(a.minor(), a.currency)} {a.currency}" + (" (closed)" if a.closed else "")
        for name, a in settings.accounts.items()
    ]
    _serve(
        create_app(settings), "Bank", host, port, notes=accounts or ["  no accounts (add them with --config)"]
    )


@emulator_app.command("sms")
def sms(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8141,
    token: TokenOption = None,
) -> None:
    """Emulate an SMS gateway speaking the JSON/HTTP SMS protocol (POST /messages, GET /messages)."""
    from paymux.notifications.sms_emulator import create_app

    _serve(
        create_app(token),
        "SMS gateway",
        host,
        port,
        notes=[
            f"  the hub: PAYMUX_SMS_URL=http://{host}:{port}",
            '  messages: GET /messages; fail the next n: POST /_emulator/fail {"count": n, "status": 500}',
        ],
    )


SecretOption = Annotated[
    str,
    typer.Option(
        "--secret",
        envvar="PAYMUX_EMULATOR_PAYMETHOD_SECRET",
        help="The HMAC secret shared with the hub (PAYMUX_PAYMETHODS ... secret).",
    ),
]


@emulator_app.command("acquirer")
def acquirer(
    secret: SecretOption,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8151,
    late_seconds: Annotated[
        float, typer.Option("--late-seconds", min=0, max=3600, help="Delay of a late card's callback.")
    ] = 5.0,
) -> None:
    """Emulate a card acquirer: hosted checkout, 3-D Secure challenge, signed callbacks (card method)."""
    from paymux.providers.emulators.acquirer import TEST_CARDS, create_app

    notes = [
        f'  the hub: PAYMUX_PAYMETHODS=\'{{"card": {{"url": "http://{host}:{port}", "secret": "..."}}}}\''
    ]
    notes += [f"  test card {n}: {o}{' (late)' if late else ''}" for n, (o, late) in TEST_CARDS.items()]
    _serve(create_app(secret, late_seconds=late_seconds), "Card acquirer", host, port, notes=notes)


@emulator_app.command("openbank")
def openbank(
    secret: SecretOption,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8161,
    confirm_seconds: Annotated[
        float, typer.Option("--confirm-seconds", min=0, max=3600, help="Delay of the signed confirmation.")
    ] = 1.0,
) -> None:
    """Emulate a bank's payment initiation: consent page, signed confirmation (open_banking, redirect)."""
    from paymux.providers.emulators.openbank import create_app

    notes = [
        f"  the hub: PAYMUX_PAYMETHODS: open_banking url http://{host}:{port} and the same secret",
        f"  redirect method url_template: http://{host}:{port}/redirect?reference={{reference}}&amount={{amount}}"
        "&currency={currency}&return_url={return_url}&callback_url={callback_url}",
    ]
    _serve(create_app(secret, confirm_seconds=confirm_seconds), "Open banking", host, port, notes=notes)


@emulator_app.command("payonline")
def payonline(
    merchant_id: Annotated[str, typer.Option("--merchant-id", help="The merchant's MerchantId (digits).")],
    private_key: Annotated[
        str,
        typer.Option(
            "--private-key", envvar="PAYMUX_EMULATOR_PAYONLINE_KEY", help="The merchant's PrivateSecurityKey."
        ),
    ],
    callback_url: Annotated[
        str | None,
        typer.Option("--callback-url", help="The hub's callback (…/api/v1/paymethods/payonline/callback)."),
    ] = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8171,
) -> None:
    """Emulate PayOnline's hosted card form and its CallbackUrl (the payonline method)."""
    from paymux.providers.emulators.payonline import create_app

    if not merchant_id.isdigit():
        typer.echo("--merchant-id must be digits", err=True)
        raise typer.Exit(2)
    notes = [
        f'  the hub: PAYMUX_PAYMETHODS=\'{{"payonline": {{"url": "http://{host}:{port}/ru/payment/", '
        f'"merchant_id": "{merchant_id}", "private_security_key": "..."}}}}\'',
        f"  callbacks go to {callback_url or '(none: set --callback-url)'}",
    ]
    _serve(create_app(merchant_id, private_key, callback_url), "PayOnline", host, port, notes=notes)


@emulator_app.command("terminal")
def terminal(
    account: Annotated[str, typer.Option("--account", help="The payer's account at the biller.")],
    amount: Annotated[str, typer.Option("--amount", help='The amount in major units, e.g. "150.00".')],
    service: Annotated[
        str | None, typer.Option("--service", help="The service (sent in the service field, 48 by default).")
    ] = None,
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The hub's ISO 8583 port.")] = 8583,
    terminal_id: Annotated[str, typer.Option("--terminal", help="Field 41: the terminal id.")] = "ATM00001",
    merchant_id: Annotated[str, typer.Option("--merchant", help="Field 42: the merchant id.")] = "",
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 alphabetic code.")] = "RUB",
    length_header: Annotated[
        str, typer.Option("--length-header", help="binary2 (2 bytes big-endian) or ascii4 (4 digits).")
    ] = "binary2",
    bitmap: Annotated[str, typer.Option("--bitmap", help="binary (8 bytes) or ascii (16 hex).")] = "binary",
    account_field: Annotated[int, typer.Option("--account-field", help="Field of the account.")] = 103,
    service_field: Annotated[int, typer.Option("--service-field", help="Field of the service.")] = 48,
    reverse: Annotated[bool, typer.Option("--reverse", help="Then reverse the payment (0400).")] = False,
) -> None:
    """Act as an ATM or POS terminal speaking ISO 8583 (1987) to the hub: 0800 sign-on, then a 0200
    bill payment (and with --reverse a 0400); prints each answer."""
    import asyncio

    from paymux.iso8583.codes import ALPHA, meaning
    from paymux.iso8583.terminal import TerminalEmulator
    from paymux.money import MoneyError, parse_amount

    if length_header not in ("binary2", "ascii4") or bitmap not in ("binary", "ascii"):
        typer.echo("--length-header is binary2 or ascii4, --bitmap binary or ascii", err=True)
        raise typer.Exit(2)
    if currency not in ALPHA:
        typer.echo(f"unknown currency {currency!r}", err=True)
        raise typer.Exit(2)
    try:
        minor = parse_amount(amount, currency)
    except MoneyError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None

    def show(what: str, answer: dict[str, str]) -> None:
        code = answer.get("39", "??")
        extra = "".join(f" {k}={answer[k]}" for k in ("11", "37", "38") if k in answer)
        typer.echo(f"{what}: {answer.get('t')} field 39={code} ({meaning(code)}){extra}")

    async def run() -> int:
        t = TerminalEmulator(
            host,
            port,
            terminal_id,
            merchant_id,
            length_header=length_header,  # type: ignore[arg-type]
            bitmap=bitmap,  # type: ignore[arg-type]
            account_field=account_field,
            service_field=service_field,
            currency=ALPHA[currency],
        )
        async with t:
            show("0800 sign-on", await t.sign_on())
            paid = await t.pay(account, minor, service=service)
            show("0200 payment", paid)
            if reverse and paid.get("39") == "00":
                show("0400 reversal", await t.reverse(paid))
        return 0 if paid.get("39") == "00" else 1

    try:
        code = asyncio.run(run())
    except (OSError, ConnectionError) as e:
        typer.echo(f"cannot talk to {host}:{port}: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
