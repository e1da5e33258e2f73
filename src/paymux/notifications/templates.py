"""Notification texts: shipped templates per event, channel and language, overrides, sandboxed rendering.

A template is Jinja2 source rendered in a sandbox (:class:`TextSandbox`): it reaches only the values
given to it. Each event has an SMS text and an e-mail subject and body in English, Russian and
Romanian (:data:`SHIPPED`); an administrator may override any of them (stored in
``notification_templates``). An event without a template of its own (one added later by another
module) is rendered with the generic template, which lists the event's data. Rendering never fails:
a template that raises falls back to the shipped one, then to the generic one.

What a template sees (:func:`context`):

* every item of the notification's ``data`` by its name (``service``, ``amount``...) and ``data``
  itself;
* ``event``, ``language``, ``timezone``, ``customer`` (``name``, ``reference``);
* ``actions``: a list of ``{name, label, url}`` (``label`` in the customer's language);
* filters ``money(currency)`` (minor units to ``"150.00 RUB"``), ``date`` and ``datetime`` (an ISO
  date-time or a datetime, shown in the customer's time zone).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from paymux.money import MoneyError, format_amount

LANGUAGES = ("en", "ru", "ro")
TEMPLATE_CHANNELS = ("sms", "email")  # the webhook carries JSON, not a template
MAX_BODY = 20_000
MAX_SUBJECT = 500
MAX_SOURCE = 20_000

GENERIC = "generic"  # the event name of the generic template (the fallback of events without their own)


class TemplateProblem(ValueError):
    """A template that cannot be used (it does not compile or does not render)."""


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body: str


# --- the sandbox ------------------------------------------------------------------------------------


class TextSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox that also refuses huge repetitions and powers (memory exhaustion)."""

    intercepted_binops = frozenset({"*", "**"})
    MAX_ITEMS = 100_000

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            seq, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(times, int) and len(seq) * times > self.MAX_ITEMS:
                raise SecurityError("repetition too large")
        return operator.mul(left, right)


def _tz(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return dt.UTC


def valid_timezone(name: str | None) -> str:
    """``name`` if it is a known IANA time zone, else ``UTC``."""
    return name if name and isinstance(_tz(name), ZoneInfo) else "UTC"


def _as_datetime(value: Any) -> dt.datetime | dt.date | None:
    if isinstance(value, dt.datetime | dt.date):
        return value
    if isinstance(value, str) and value:
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


DATE_FORMATS = {"en": "%Y-%m-%d", "ru": "%d.%m.%Y", "ro": "%d.%m.%Y"}


def _environment() -> TextSandbox:
    env = TextSandbox(autoescape=False, keep_trailing_newline=False)

    def money(value: Any, currency: Any = None) -> str:
        if isinstance(value, Undefined) or value is None or isinstance(value, bool):
            return ""
        if not isinstance(currency, str) or not currency:
            return str(value)
        try:
            minor = int(value) if isinstance(value, int | str) else None
        except ValueError:
            minor = None
        if minor is None:
            return str(value)
        try:
            return f"{format_amount(minor, currency)} {currency}"
        except MoneyError:
            return f"{value} {currency}"

    def _shown(value: Any, ctx_tz: str, with_time: bool, language: str) -> str:
        if isinstance(value, Undefined) or value is None:
            return ""
        moment = _as_datetime(value)
        if moment is None:
            return str(value)
        fmt = DATE_FORMATS.get(language, DATE_FORMATS["en"])
        if isinstance(moment, dt.datetime):
            aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
            local = aware.astimezone(_tz(ctx_tz))
            return local.strftime(fmt + (" %H:%M" if with_time else ""))
        return moment.strftime(fmt)

    from jinja2 import pass_context

    @pass_context
    def date(ctx: Any, value: Any) -> str:
        return _shown(value, str(ctx.get("timezone", "UTC")), False, str(ctx.get("language", "en")))

    @pass_context
    def datetime_(ctx: Any, value: Any) -> str:
        return _shown(value, str(ctx.get("timezone", "UTC")), True, str(ctx.get("language", "en")))

    env.filters["money"] = money
    env.filters["date"] = date
    env.filters["datetime"] = datetime_
    return env


ENV = _environment()


# --- the shipped templates -----------------------------------------------------------------------

ACTION_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "confirm": "Confirm",
        "decline": "Decline",
        "repeat": "Repeat now",
        "subscribe": "Repeat and subscribe",
        "opt_out": "Stop these reminders",
        "pay": "Pay",
    },
    "ru": {
        "confirm": "Подтвердить",
        "decline": "Отклонить",
        "repeat": "Повторить сейчас",
        "subscribe": "Повторить и подписаться",
        "opt_out": "Больше не напоминать",
        "pay": "Оплатить",
    },
    "ro": {
        "confirm": "Confirmă",
        "decline": "Refuză",
        "repeat": "Repetă acum",
        "subscribe": "Repetă și abonează-te",
        "opt_out": "Nu mai trimite mementouri",
        "pay": "Plătește",
    },
}

_ACCT = "{% if account %} ({{ account }}){% endif %}"

# event -> language -> (e-mail subject, the message both channels carry)
MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    "charge.upcoming": {
        "en": (
            "Upcoming payment: {{ service }}",
            "{{ amount|money(currency) }} will be paid for {{ service }}" + _ACCT + " on {{ due_at|date }}.",
        ),
        "ru": (
            "Предстоящий платёж: {{ service }}",
            "{{ due_at|date }} будет оплачено {{ amount|money(currency) }} за {{ service }}" + _ACCT + ".",
        ),
        "ro": (
            "Plată programată: {{ service }}",
            "Pe {{ due_at|date }} se vor plăti {{ amount|money(currency) }} pentru {{ service }}"
            + _ACCT
            + ".",
        ),
    },
    "run.paid": {
        "en": (
            "Payment made: {{ service }}",
            "{{ amount|money(currency) }} paid for {{ service }}"
            + _ACCT
            + "{% if paid_at %} on {{ paid_at|date }}{% endif %}.",
        ),
        "ru": (
            "Платёж выполнен: {{ service }}",
            "Оплачено {{ amount|money(currency) }} за {{ service }}"
            + _ACCT
            + "{% if paid_at %} {{ paid_at|date }}{% endif %}.",
        ),
        "ro": (
            "Plată efectuată: {{ service }}",
            "Au fost plătiți {{ amount|money(currency) }} pentru {{ service }}"
            + _ACCT
            + "{% if paid_at %} pe {{ paid_at|date }}{% endif %}.",
        ),
    },
    "run.failed": {
        "en": (
            "Payment failed: {{ service }}",
            "The payment of {{ amount|money(currency) }} for {{ service }}"
            + _ACCT
            + " failed{% if reason %}: {{ reason }}{% endif %}.",
        ),
        "ru": (
            "Платёж не выполнен: {{ service }}",
            "Платёж {{ amount|money(currency) }} за {{ service }}"
            + _ACCT
            + " не выполнен{% if reason %}: {{ reason }}{% endif %}.",
        ),
        "ro": (
            "Plată eșuată: {{ service }}",
            "Plata de {{ amount|money(currency) }} pentru {{ service }}"
            + _ACCT
            + " a eșuat{% if reason %}: {{ reason }}{% endif %}.",
        ),
    },
    "run.limit_exceeded": {
        "en": (
            "Payment above your limit: {{ service }}",
            "{{ amount|money(currency) }} for {{ service }}"
            + _ACCT
            + " was not paid: it is above your limit{% if limit %} of"
            " {{ limit|money(currency) }}{% endif %}.",
        ),
        "ru": (
            "Платёж превышает лимит: {{ service }}",
            "{{ amount|money(currency) }} за {{ service }}"
            + _ACCT
            + " не оплачено: сумма превышает ваш лимит{% if limit %} {{ limit|money(currency) }}{% endif %}.",
        ),
        "ro": (
            "Plată peste limită: {{ service }}",
            "{{ amount|money(currency) }} pentru {{ service }}"
            + _ACCT
            + " nu a fost plătit: suma depășește limita dvs.{% if limit %} de"
            " {{ limit|money(currency) }}{% endif %}.",
        ),
    },
    "run.skipped": {
        "en": (
            "Payment skipped: {{ service }}",
            "The payment{% if amount %} of {{ amount|money(currency) }}{% endif %} for {{ service }}"
            + _ACCT
            + "{% if due_at %} due {{ due_at|date }}{% endif %} was skipped{% if reason %}: {{ reason }}"
            "{% endif %}.",
        ),
        "ru": (
            "Платёж пропущен: {{ service }}",
            "Платёж{% if amount %} {{ amount|money(currency) }}{% endif %} за {{ service }}"
            + _ACCT
            + "{% if due_at %} на {{ due_at|date }}{% endif %} пропущен{% if reason %}: {{ reason }}"
            "{% endif %}.",
        ),
        "ro": (
            "Plată omisă: {{ service }}",
            "Plata{% if amount %} de {{ amount|money(currency) }}{% endif %} pentru {{ service }}"
            + _ACCT
            + "{% if due_at %} din {{ due_at|date }}{% endif %} a fost omisă{% if reason %}: {{ reason }}"
            "{% endif %}.",
        ),
    },
    "debt.confirm": {
        "en": (
            "Please confirm the payment: {{ service }}",
            "Your debt for {{ service }}"
            + _ACCT
            + " is {{ amount|money(currency) }}{% if limit %}, above your limit of"
            " {{ limit|money(currency) }}{% endif %}. Confirm to pay it.",
        ),
        "ru": (
            "Подтвердите платёж: {{ service }}",
            "Ваш долг за {{ service }}"
            + _ACCT
            + " составляет {{ amount|money(currency) }}{% if limit %}, это больше вашего лимита"
            " {{ limit|money(currency) }}{% endif %}. Подтвердите оплату.",
        ),
        "ro": (
            "Confirmați plata: {{ service }}",
            "Datoria dvs. pentru {{ service }}"
            + _ACCT
            + " este de {{ amount|money(currency) }}{% if limit %}, peste limita dvs. de"
            " {{ limit|money(currency) }}{% endif %}. Confirmați plata.",
        ),
    },
    "reminder.repeat": {
        "en": (
            "Pay {{ service }} again?",
            "Last time you paid {{ amount|money(currency) }} for {{ service }}"
            + _ACCT
            + "{% if paid_at %} on {{ paid_at|date }}{% endif %}. Repeat the payment?",
        ),
        "ru": (
            "Повторить оплату {{ service }}?",
            "В прошлый раз вы оплатили {{ amount|money(currency) }} за {{ service }}"
            + _ACCT
            + "{% if paid_at %} {{ paid_at|date }}{% endif %}. Повторить платёж?",
        ),
        "ro": (
            "Plătiți din nou {{ service }}?",
            "Ultima dată ați plătit {{ amount|money(currency) }} pentru {{ service }}"
            + _ACCT
            + "{% if paid_at %} pe {{ paid_at|date }}{% endif %}. Repetați plata?",
        ),
    },
    "invoice.reminder": {
        "en": (
            "Invoice {{ number }}{% if biller %} from {{ biller }}{% endif %}: {{ amount|money(currency) }}",
            "Invoice {{ number }}{% if biller %} from {{ biller }}{% endif %}: {{ amount|money(currency) }}"
            " {% if days > 0 %}was due on {{ due_date|date }} ({{ days }} days ago){% elif days == 0 %}"
            "is due today{% else %}is due on {{ due_date|date }}{% endif %}. Pay: {{ pay_url }}"
            "{% if qr_url %}\nQR code to pay with your banking app: {{ qr_url }}{% endif %}",
        ),
        "ru": (
            "Счёт {{ number }}{% if biller %} от {{ biller }}{% endif %}: {{ amount|money(currency) }}",
            "Счёт {{ number }}{% if biller %} от {{ biller }}{% endif %} на {{ amount|money(currency) }}"
            " {% if days > 0 %}нужно было оплатить до {{ due_date|date }} (дней просрочки: {{ days }})"
            "{% elif days == 0 %}нужно оплатить сегодня{% else %}нужно оплатить до {{ due_date|date }}"
            "{% endif %}. Оплатить: {{ pay_url }}"
            "{% if qr_url %}\nQR-код для оплаты в приложении банка: {{ qr_url }}{% endif %}",
        ),
        "ro": (
            "Factura {{ number }}{% if biller %} de la {{ biller }}{% endif %}: {{ amount|money(currency) }}",
            "Factura {{ number }}{% if biller %} de la {{ biller }}{% endif %}"
            " de {{ amount|money(currency) }} {% if days > 0 %}era scadentă pe {{ due_date|date }}"
            " (întârziere: {{ days }} zile)"
            "{% elif days == 0 %}este scadentă astăzi{% else %}este scadentă pe {{ due_date|date }}"
            "{% endif %}. Plătiți: {{ pay_url }}"
            "{% if qr_url %}\nCod QR pentru plata din aplicația băncii: {{ qr_url }}{% endif %}",
        ),
    },
}

_DATA_LINES = (
    "{% for k, v in data|dictsort %}{% if k in ('amount', 'limit') and data.currency %}"
    "{{ k }}: {{ v|money(data.currency) }}{% else %}{{ k }}: {{ v }}{% endif %}\n{% endfor %}"
)
GENERIC_MESSAGES: dict[str, tuple[str, str]] = {
    "en": ("Notification: {{ event }}", "Notification: {{ event }}\n" + _DATA_LINES),
    "ru": ("Уведомление: {{ event }}", "Уведомление: {{ event }}\n" + _DATA_LINES),
    "ro": ("Notificare: {{ event }}", "Notificare: {{ event }}\n" + _DATA_LINES),
}

GREETINGS = {
    "en": "{% if customer.name %}Dear {{ customer.name }},{% else %}Hello,{% endif %}",
    "ru": "{% if customer.name %}Здравствуйте, {{ customer.name }}!{% else %}Здравствуйте!{% endif %}",
    "ro": "{% if customer.name %}Bună ziua, {{ customer.name }},{% else %}Bună ziua,{% endif %}",
}
SIGNATURES = {
    "en": "This message was sent automatically; please do not reply to it.",
    "ru": "Это сообщение отправлено автоматически, не отвечайте на него.",
    "ro": "Acest mesaj a fost trimis automat; vă rugăm să nu răspundeți.",
}
_SMS_ACTIONS = "{% for a in actions if a.url %} {{ a.label }}: {{ a.url }}{% endfor %}"
_EMAIL_ACTIONS = "{% for a in actions if a.url %}\n{{ a.label }}: {{ a.url }}{% endfor %}"


def _sms(message: str) -> str:
    return message + _SMS_ACTIONS


def _email(language: str, message: str) -> str:
    return f"{GREETINGS[language]}\n\n{message}\n{_EMAIL_ACTIONS}\n\n--\n{SIGNATURES[language]}\n"


@dataclass(frozen=True)
class Source:
    """A template's source: ``subject`` for e-mail only."""

    subject: str | None
    body: str


def shipped(event: str, channel: str, language: str) -> Source | None:
    """The shipped template of ``event`` (``GENERIC`` for the generic one), or None."""
    if channel not in TEMPLATE_CHANNELS or language not in LANGUAGES:
        return None
    found = GENERIC_MESSAGES.get(language) if event == GENERIC else MESSAGES.get(event, {}).get(language)
    if found is None:
        return None
    subject, message = found
    if event == GENERIC and channel == "email":
        return Source(subject, _email(language, message.rstrip("\n")))
    if channel == "sms":
        return Source(None, _sms(message.rstrip("\n").replace("\n", " ")))
    return Source(subject, _email(language, message))


def known_events() -> list[str]:
    return sorted(MESSAGES)


def normalize_language(language: str | None) -> str:
    lang = (language or "en").strip().lower().replace("_", "-").split("-")[0]
    return lang if lang in LANGUAGES else "en"


# --- rendering -------------------------------------------------------------------------------------


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can carry it: datetimes and dates as ISO text, decimals as text."""
    if depth > 20:
        return str(value)
    if isinstance(value, str):
        return value.replace("\x00", "")  # PostgreSQL stores no NUL in text or JSON
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", ""): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)


def context(
    *,
    event: str,
    data: Mapping[str, Any],
    language: str,
    timezone: str,
    customer_name: str | None,
    reference: str | None,
    actions: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    labels = ACTION_LABELS.get(language, ACTION_LABELS["en"])
    ctx: dict[str, Any] = {k: v for k, v in data.items() if isinstance(k, str) and k.isidentifier()}
    ctx.update(
        data=dict(data),
        event=event,
        language=language,
        timezone=timezone,
        customer={"name": customer_name, "reference": reference},
        actions=[
            {"name": a["name"], "label": labels.get(str(a["name"]), str(a["name"])), "url": a.get("url")}
            for a in actions
        ],
    )
    return ctx


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_source(source: Source, ctx: Mapping[str, Any]) -> Rendered:
    """Render ``source``; raises :class:`TemplateProblem` when it does not compile or render."""
    try:
        subject = (
            _one_line(ENV.from_string(source.subject).render(ctx))[:MAX_SUBJECT]
            if source.subject is not None
            else None
        )
        body = ENV.from_string(source.body).render(ctx)
    except SecurityError as e:
        raise TemplateProblem(f"not allowed in a template: {e}") from None
    except TemplateError as e:
        line = getattr(e, "lineno", None)
        raise TemplateProblem(f"{type(e).__name__}{f' on line {line}' if line else ''}: {e}") from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RecursionError) as e:
        raise TemplateProblem(f"the template fails when rendered: {type(e).__name__}: {e}") from None
    return Rendered(
        subject.replace("\x00", "") if subject else subject, body.replace("\x00", "").strip()[:MAX_BODY]
    )


def candidates(
    event: str, channel: str, language: str, overrides: Mapping[tuple[str, str, str], Source]
) -> list[Source]:
    """The templates to try in order: the override, then the shipped one, in the customer's language,
    then in English; then the generic template (its override, then the shipped one)."""
    out: list[Source] = []
    langs = [language] if language == "en" else [language, "en"]
    for ev in (event, GENERIC):
        for lang in langs:
            for found in (overrides.get((ev, channel, lang)), shipped(ev, channel, lang)):
                if found is not None:
                    out.append(found)
    return out


def render(
    event: str, channel: str, ctx: Mapping[str, Any], overrides: Mapping[tuple[str, str, str], Source]
) -> Rendered:
    """The text of a notification: the first candidate that renders (never fails)."""
    language = str(ctx.get("language", "en"))
    for source in candidates(event, channel, language, overrides):
        try:
            return render_source(source, ctx)
        except TemplateProblem:
            continue
    # the shipped generic template cannot fail on JSON data; this is the last resort all the same
    return Rendered(event if channel == "email" else None, f"{event}")


def sample_data(event: str) -> dict[str, Any]:
    """Example data of ``event``, to check a template before it is saved (and in the docs)."""
    base: dict[str, Any] = {
        "service": "Mobile top-up",
        "account": "9161234567",
        "amount": 15000,
        "currency": "RUB",
        "subscription_id": 1,
    }
    extra: dict[str, dict[str, Any]] = {
        "charge.upcoming": {"due_at": "2026-12-10T09:00:00+00:00"},
        "run.paid": {"paid_at": "2026-12-10T09:00:05+00:00", "payment_id": 42},
        "run.failed": {"reason": "insufficient funds"},
        "run.limit_exceeded": {"limit": 10000},
        "run.skipped": {"due_at": "2026-12-01T09:00:00+00:00", "reason": "the hub was down too long"},
        "debt.confirm": {"limit": 10000},
        "reminder.repeat": {"paid_at": "2026-11-10T09:00:00+00:00"},
        "invoice.reminder": {
            "number": "2026-000017",
            "biller": "Power Co",
            "due_date": "2026-12-31",
            "days": -3,
            "pay_url": "https://hub.example/pay/4d2Vq",
            "qr_url": "https://hub.example/pay/4d2Vq/qr.png",
        },
    }
    return {**base, **extra.get(event, {})}


def sample_context(event: str, language: str) -> dict[str, Any]:
    actions = [{"name": n, "url": f"https://bank.example/a/{n}"} for n in ("confirm", "decline")]
    return context(
        event=event,
        data=sample_data(event),
        language=language,
        timezone="Europe/Chisinau",
        customer_name="Ion Popescu",
        reference="c-1",
        actions=actions,
    )


def check(source: Source, event: str, channel: str, language: str) -> Rendered:
    """Render ``source`` with sample data; raises :class:`TemplateProblem` if it cannot be used."""
    if len(source.body) > MAX_SOURCE or len(source.subject or "") > MAX_SOURCE:
        raise TemplateProblem(f"a template is at most {MAX_SOURCE} characters")
    if channel == "email" and not (source.subject or "").strip():
        raise TemplateProblem("an e-mail template needs a subject")
    out = render_source(source, sample_context(event, language))
    if not out.body:
        raise TemplateProblem("the template renders to an empty text")
    return out
