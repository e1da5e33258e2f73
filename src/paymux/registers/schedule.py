"""Periods of registers in the provider's timezone, when each is due, and the task scheduler."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.registers.models import RegisterTask, RegisterTemplate
from paymux.registers.schemas import Schedule, TemplateConfig

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
MONTH = re.compile(r"^\d{4}-\d{2}\Z")


class PeriodError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # daily | monthly
    first: dt.date  # first local day of the period
    tz: ZoneInfo

    @property
    def key(self) -> str:
        return self.first.isoformat() if self.kind == "daily" else self.first.strftime("%Y-%m")

    @property
    def next_first(self) -> dt.date:
        if self.kind == "daily":
            return self.first + dt.timedelta(days=1)
        y, m = (self.first.year + 1, 1) if self.first.month == 12 else (self.first.year, self.first.month + 1)
        return dt.date(y, m, 1)

    @property
    def last(self) -> dt.date:
        return self.next_first - dt.timedelta(days=1)

    @property
    def start(self) -> dt.datetime:
        """Start of the period in UTC (local midnight of its first day)."""
        return local_midnight(self.first, self.tz)

    @property
    def end(self) -> dt.datetime:
        """End of the period in UTC (exclusive)."""
        return local_midnight(self.next_first, self.tz)

    def previous(self) -> Period:
        if self.kind == "daily":
            return Period(self.kind, self.first - dt.timedelta(days=1), self.tz)
        prev_last = self.first - dt.timedelta(days=1)
        return Period(self.kind, prev_last.replace(day=1), self.tz)

    def due_at(self, schedule: Schedule) -> dt.datetime:
        """When the scheduled register of this period is due (UTC)."""
        if self.kind == "daily":
            day = self.next_first + dt.timedelta(days=schedule.delay_days)
        else:
            day = self.next_first.replace(day=schedule.day_of_month)
        return dt.datetime.combine(day, schedule.time(), tzinfo=self.tz).astimezone(dt.UTC)


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def period_containing(kind: str, moment: dt.datetime, tz: ZoneInfo) -> Period:
    local = moment.astimezone(tz).date()
    return Period(kind, local if kind == "daily" else local.replace(day=1), tz)


def parse_period(kind: str, text: str, tz: ZoneInfo) -> Period:
    """The period a date string names: ``YYYY-MM-DD``, or for monthly registers also ``YYYY-MM``."""
    text = text.strip()
    try:
        if DAY.match(text):
            day = dt.date.fromisoformat(text)
        elif MONTH.match(text) and kind == "monthly":
            day = dt.date.fromisoformat(text + "-01")
        else:
            raise ValueError
    except ValueError:
        want = "YYYY-MM-DD" if kind == "daily" else "YYYY-MM or YYYY-MM-DD"
        raise PeriodError(f"{text!r} is not a date ({want})") from None
    return Period(kind, day if kind == "daily" else day.replace(day=1), tz)


def due_periods(
    kind: str, schedule: Schedule, tz: ZoneInfo, now: dt.datetime, since: dt.datetime
) -> list[Period]:
    """Periods whose register is due by ``now``: at most ``catch_up`` of the latest, none before ``since``."""
    p = period_containing(kind, now, tz)
    out: list[Period] = []
    # the current period is never due (its due time is after its end); walk back to the latest due one
    for _ in range(370):
        if p.due_at(schedule) <= now:
            break
        p = p.previous()
    floor = period_containing(kind, since, tz).first
    while len(out) < schedule.catch_up and p.first >= floor:
        out.append(p)
        p = p.previous()
    return out


async def schedule_due(session: AsyncSession, sqlite: bool, now: dt.datetime | None = None) -> int:
    """Create the scheduled tasks that are due (idempotent: one per template and period). Returns how many."""
    now = now or utcnow()
    rows = (
        await session.execute(
            select(RegisterTemplate, Provider.timezone)
            .join(Provider, Provider.id == RegisterTemplate.provider_id)
            .where(RegisterTemplate.enabled.is_(True))
            .order_by(RegisterTemplate.id)
        )
    ).all()
    created = 0
    insert = sqlite_insert if sqlite else pg_insert
    for tpl, tzname in rows:
        cfg = TemplateConfig.model_validate(tpl.config)
        if cfg.schedule is None or not cfg.schedule.enabled:
            continue
        tz = ZoneInfo(tzname)
        for p in due_periods(tpl.kind, cfg.schedule, tz, now, tpl.created_at):
            stmt = (
                insert(RegisterTask)
                .values(
                    **task_values(tpl, p, cfg, due_at=p.due_at(cfg.schedule), run=0, deliver=True, now=now)
                )
                .on_conflict_do_nothing(index_elements=["template_id", "period_key", "run"])
            )
            result = await session.execute(stmt)
            created += max(getattr(result, "rowcount", 0) or 0, 0)
    return created


def task_values(
    tpl: RegisterTemplate,
    p: Period,
    cfg: TemplateConfig,
    *,
    due_at: dt.datetime,
    run: int,
    deliver: bool,
    now: dt.datetime,
    created_by: str = "scheduler",
) -> dict[str, object]:
    return {
        "template_id": tpl.id,
        "provider_id": tpl.provider_id,
        "period_key": p.key,
        "run": run,
        "period_start": p.start,
        "period_end": p.end,
        "deliver": deliver,
        "status": "pending",
        "due_at": due_at,
        "attempts": 0,
        "max_attempts": cfg.retry.max_attempts,
        "totals": {},
        "delivered": {},
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
    }
