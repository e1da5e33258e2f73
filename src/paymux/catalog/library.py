"""A provider library: an aggregator's list of its services, imported into the catalog after a diff.

The file (docs/catalog.md, "Provider libraries") is CSV with a header row, UTF-8 (a BOM is
allowed), or JSON (a list of objects, or ``{"services": [...]}``), one service a row:

======================  ========  ===============================================================
column                  required  meaning
======================  ========  ===============================================================
``code``                yes       the aggregator's code of the service (what the hub sends it)
``name``                yes       the service's name
``category``            yes       a category (mobile, internet, utilities, ...)
``currency``            yes       ISO 4217
``account_pattern``     no        a regular expression the account must match (default: 1-64 chars)
``account_hint``        no        what to tell a payer about the account
``min_amount``          no        decimal, major units
``max_amount``          no        decimal, major units
``fields``              no        extra inputs: ``name`` or ``name:pattern``, ``;``-separated (CSV)
                                  or a list of ``{"name", "pattern", "required"}`` (JSON)
``enabled``             no        ``true``/``false`` (default true)
======================  ========  ===============================================================

A library row is the service the aggregator (a provider of the catalog) delivers under ``code``. It
is matched to a service of the catalog routed to that provider under that code, else to the
service code ``<provider>-<code>``; a new one gets that code and a route to the provider. Importing
changes only what the library says (name, category, account rules, limits, fields) and the
provider's route candidate; other candidates of a service are kept. Services routed to the provider
that the library no longer lists are reported (and disabled with ``disable_missing``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import ApplyReport, apply_catalog
from paymux.catalog.schemas import CandidateIn, CatalogFile, FieldIn, ServiceIn
from paymux.catalog.service import CatalogError, get_provider, list_services, service_to_schema

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 20_000
COLUMNS = (
    "code",
    "name",
    "category",
    "currency",
    "account_pattern",
    "account_hint",
    "min_amount",
    "max_amount",
    "fields",
    "enabled",
)
REQUIRED = ("code", "name", "category", "currency")
COMPARED = (
    "name",
    "category",
    "account_pattern",
    "account_hint",
    "min_amount",
    "max_amount",
    "fields",
    "enabled",
)
_SLUG = re.compile(r"[^a-z0-9_.:-]+")

Format = Literal["csv", "json"]


class LibraryError(ValueError):
    """A library file that cannot be read at all (not its rows: those are listed as problems)."""


@dataclass
class Change:
    kind: Literal["added", "changed", "unchanged", "missing"]
    service: str
    library_code: str
    what: list[str] = field(default_factory=list)

    def line(self) -> str:
        detail = f": {'; '.join(self.what)}" if self.what else ""
        return f"{self.kind} {self.service} ({self.library_code}){detail}"


@dataclass
class ImportPlan:
    provider: str
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    services: list[ServiceIn] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "changed": 0, "unchanged": 0, "missing": 0}
        for c in self.changes:
            out[c.kind] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        text = (
            f"{c['added']} added, {c['changed']} changed, {c['unchanged']} unchanged, {c['missing']} missing"
        )
        return text + (f", {len(self.problems)} problems" if self.problems else "")

    def as_dict(self, limit: int = 1000) -> dict[str, Any]:
        shown = [c for c in self.changes if c.kind != "unchanged"]
        return {
            "provider": self.provider,
            "summary": self.summary(),
            "counts": self.counts(),
            "problems": self.problems[:limit],
            "changes": [c.line() for c in shown[:limit]],
            "more_changes": max(0, len(shown) - limit),
        }


def detect_format(data: bytes, name: str | None = None, content_type: str | None = None) -> Format:
    lowered = (name or "").lower()
    if lowered.endswith(".json") or "json" in (content_type or ""):
        return "json"
    if lowered.endswith(".csv") or "csv" in (content_type or ""):
        return "csv"
    return "json" if data.lstrip()[:1] in (b"[", b"{") else "csv"


def read_rows(data: bytes, fmt: Format) -> list[dict[str, Any]]:
    """The rows of a library file as dicts (keys as in the file); LibraryError if unreadable."""
    if len(data) > MAX_BYTES:
        raise LibraryError(f"the library is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LibraryError(f"the library is not UTF-8 (byte {e.start})") from None
    if fmt == "json":
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise LibraryError(f"the library is not JSON: {e}") from None
        rows = doc.get("services") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LibraryError('a JSON library is a list of objects or {"services": [...]}')
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise LibraryError(f"the CSV header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})")
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise LibraryError(f"unknown columns {', '.join(unknown)} (columns: {', '.join(COLUMNS)})")
        reader.fieldnames = header
        try:
            rows = [dict(r) for r in reader]
        except csv.Error as e:
            raise LibraryError(f"the CSV cannot be read: {e}") from None
    if len(rows) > MAX_ROWS:
        raise LibraryError(f"the library has {len(rows)} rows; at most {MAX_ROWS} are imported at once")
    return rows


def service_code(provider: str, code: str) -> str:
    """The catalog code of a new service from the library: ``<provider>-<its code, slugged>``."""
    slug = _SLUG.sub("-", code.strip().lower()).strip("-") or "x"
    return f"{provider}-{slug}"[:64]


def _fields(value: Any) -> list[FieldIn]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        out = []
        for part in value.split(";"):
            name, _, pattern = part.strip().partition(":")
            if name:
                out.append(FieldIn(name=name.strip(), pattern=pattern.strip() or None))
        return out
    if isinstance(value, list):
        return [FieldIn.model_validate(f) for f in value]
    raise ValueError("fields must be 'name:pattern;...' or a list of objects")


def _enabled(value: Any) -> bool:
    if value in (None, ""):
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"enabled must be true or false, not {value!r}")


def _text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _merged(
    provider: str, row: dict[str, Any], existing: ServiceIn | None, code: str
) -> tuple[ServiceIn, list[str]]:
    """The service as it should be after the import, and what differs from ``existing``."""
    lib_code = str(row["code"]).strip()
    base: dict[str, Any] = existing.model_dump() if existing else {"code": code}
    values: dict[str, Any] = {
        "name": _text(row, "name"),
        "category": _text(row, "category"),
        "currency": (_text(row, "currency") or "").upper(),
        "account_hint": _text(row, "account_hint"),
        "min_amount": _text(row, "min_amount"),
        "max_amount": _text(row, "max_amount"),
        "fields": [f.model_dump() for f in _fields(row.get("fields"))],
        "enabled": _enabled(row.get("enabled")),
    }
    if _text(row, "account_pattern"):
        values["account_pattern"] = _text(row, "account_pattern")
    if existing is not None and values["currency"] != existing.currency:
        raise ValueError(f"currency {values['currency']} differs from the service's {existing.currency}")
    own = next((c for c in (existing.route.candidates if existing else []) if c.provider == provider), None)
    mine = (own or CandidateIn(provider=provider, code=lib_code)).model_copy(update={"code": lib_code})
    others = list(existing.route.candidates) if existing else []
    candidates = [mine if c.provider == provider else c for c in others] if own else [*others, mine]
    route: dict[str, Any] = {
        "strategy": existing.route.strategy if existing else "priority",
        "candidates": [c.model_dump() for c in candidates],
    }
    service = ServiceIn.model_validate({**base, **values, "route": route})
    if existing is None:
        return service, []
    what = []
    for key in COMPARED:
        old, new = getattr(existing, key), getattr(service, key)
        if old != new:
            what.append(f"{key}: {_show(old)} -> {_show(new)}")
    if own is None or own.code != lib_code:
        what.append(f"route to {provider}: {own.code if own else 'none'} -> {lib_code}")
    return service, what


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(getattr(v, "name", str(v)) for v in value) + "]"
    return repr(value)


async def plan_import(
    session: AsyncSession, provider: str, rows: list[dict[str, Any]], *, disable_missing: bool = False
) -> ImportPlan:
    """What importing ``rows`` for ``provider`` would change; nothing is written."""
    await get_provider(session, provider)  # CatalogError when unknown
    plan = ImportPlan(provider)
    existing: dict[str, ServiceIn] = {}
    routed: dict[str, str] = {}  # the provider's service code -> our service code
    for stored in await list_services(session):
        schema = await service_to_schema(session, stored)
        existing[schema.code] = schema
        for cand in schema.route.candidates:
            if cand.provider == provider:
                routed.setdefault(cand.code, schema.code)
    seen_lib: set[str] = set()
    seen_codes: set[str] = set()
    for number, row in enumerate(rows, start=2):
        where = f"row {number}"
        missing = [k for k in REQUIRED if not _text(row, k)]
        if missing:
            plan.problems.append(f"{where}: {', '.join(missing)} missing")
            continue
        lib_code = str(row["code"]).strip()
        where = f"row {number} ({lib_code[:64]})"
        if lib_code in seen_lib:
            plan.problems.append(f"{where}: the code appears twice")
            continue
        seen_lib.add(lib_code)
        code = routed.get(lib_code) or service_code(provider, lib_code)
        if code in seen_codes:
            plan.problems.append(f"{where}: makes the service code {code} of another row")
            continue
        seen_codes.add(code)
        try:
            service, what = _merged(provider, row, existing.get(code), code)
        except (ValidationError, ValueError) as e:
            plan.problems.append(f"{where}: {_reason(e)}")
            continue
        kind: Literal["added", "changed", "unchanged"] = (
            "added" if code not in existing else "changed" if what else "unchanged"
        )
        plan.changes.append(Change(kind, code, lib_code, what))
        if kind != "unchanged":
            plan.services.append(service)
    for lib_code, code in sorted(routed.items()):
        if lib_code not in seen_lib:
            plan.changes.append(Change("missing", code, lib_code, ["disabled"] if disable_missing else []))
            if disable_missing and existing[code].enabled:
                plan.services.append(existing[code].model_copy(update={"enabled": False}))
    return plan


def _reason(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()[:3]
        )
    return str(e)


async def apply_import(session: AsyncSession, plan: ImportPlan, actor: str) -> ApplyReport:
    """Write ``plan`` (refused while it has problems); the caller commits."""
    if plan.problems:
        raise CatalogError(f"the library has {len(plan.problems)} problems; first: {plan.problems[0]}")
    return await apply_catalog(session, CatalogFile(services=plan.services), actor)
