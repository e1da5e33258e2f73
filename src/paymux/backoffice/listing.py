"""Lists with search, filters, sorting, pagination and export to Excel, for any section.

A section describes its list once (columns, searchable columns, filters, a base query) and calls
``await spec.run(session, request)``; the ``list.html`` macros draw it, ``?export=xlsx`` downloads it.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import parse_id
from paymux.backoffice.i18n import Translator
from paymux.downloads import attachment_built

EXPORT_LIMIT = 100_000


@dataclass
class Column:
    key: str
    title: str  # msgid
    sort: Any = None  # a column expression to sort by, or None (not sortable)
    value: Callable[[Any], Any] | None = None  # how to get the cell from a row (default: attribute key)

    def get(self, row: Any) -> Any:
        return self.value(row) if self.value else getattr(row, self.key, None)


@dataclass
class Filter:
    key: str
    title: str  # msgid
    apply: Callable[[Any, str], Any]  # (select, value) -> filtered select
    choices: Sequence[tuple[str, str]] | None = None  # (value, msgid); None: free text
    kind: str = "text"  # "text", "date" (applied as given, the page converts to UTC)


@dataclass
class ListSpec:
    query: Any  # a select() of one entity or of an entity and labelled columns
    columns: list[Column]
    search: list[Any] = field(default_factory=list)  # columns searched with ILIKE
    filters: list[Filter] = field(default_factory=list)
    default_sort: str = ""
    default_desc: bool = True
    page_size: int = 25
    sheet: str = "export"
    # what a page and its export show of each row read (default: the row itself), e.g. only the
    # fields the viewer may see
    row_view: Callable[[Any], Any] | None = None

    async def run(self, session: AsyncSession, request: Request) -> ListPage:
        params = request.query_params
        q = self.query
        term = params.get("q", "").strip()
        if term and self.search:
            q = q.where(or_(*[c.ilike(f"%{term}%") for c in self.search]))
        values: dict[str, str] = {}
        for f in self.filters:
            v = params.get(f.key, "").strip()
            if v:
                values[f.key] = v
                q = f.apply(q, v)
        sortable = {c.key: c.sort for c in self.columns if c.sort is not None}
        sort = params.get("sort", self.default_sort)
        if sort not in sortable:
            sort = self.default_sort
        desc = params.get("dir", "desc" if self.default_desc else "asc") == "desc"
        if sort:
            expr = sortable[sort]
            q = q.order_by(expr.desc() if desc else expr.asc())
        total = int(await session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0)
        pages = max(1, -(-total // self.page_size))
        page = min(parse_id(params.get("page")) or 1, pages)  # past the last page: the last page
        export = params.get("export") == "xlsx"
        if export:
            rows = (await session.execute(q.limit(EXPORT_LIMIT))).all()
        else:
            rows = (await session.execute(q.limit(self.page_size).offset((page - 1) * self.page_size))).all()
        items = [r[0] if len(r) == 1 else r for r in rows]
        if self.row_view is not None:
            items = [self.row_view(r) for r in items]
        return ListPage(self, items, total, page, pages, sort, desc, term, values, export)


@dataclass
class ListPage:
    spec: ListSpec
    rows: list[Any]
    total: int
    page: int
    pages: int
    sort: str
    desc: bool
    term: str
    filters: dict[str, str]
    export: bool

    def url(self, **changes: Any) -> str:
        """The query string of this list with some parameters changed."""
        params: dict[str, Any] = {
            "q": self.term,
            "sort": self.sort,
            "dir": "desc" if self.desc else "asc",
            "page": self.page,
            **self.filters,
        }
        params.update(changes)
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    def sort_url(self, key: str) -> str:
        return self.url(sort=key, dir="asc" if self.sort == key and self.desc else "desc", page=1)

    def xlsx(self, _: Translator, tz_format: Callable[[dt.datetime], str]) -> Response:
        """The rows as an Excel file, written in a thread as it is sent (up to EXPORT_LIMIT rows)."""
        return attachment_built(lambda: self._workbook(_, tz_format), f"{self.spec.sheet}.xlsx")

    def _workbook(self, _: Translator, tz_format: Callable[[dt.datetime], str]) -> bytes:
        from openpyxl import Workbook  # imported when needed: 6 MB the server does not hold idle

        wb = Workbook(write_only=True)  # rows go to a temporary file, not to cell objects
        ws = wb.create_sheet(self.spec.sheet[:31])
        ws.append([_(c.title) for c in self.spec.columns])
        for row in self.rows:
            ws.append([_cell(c.get(row), tz_format) for c in self.spec.columns])
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()


def _cell(value: Any, tz_format: Callable[[dt.datetime], str]) -> Any:
    if isinstance(value, dt.datetime):
        return tz_format(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value)
    return str(value)


def respond(request: Request, page: ListPage, template: str, **context: Any) -> Response:
    """The list page, or its Excel export when asked for (same filters, every row up to the limit)."""
    from paymux.backoffice.framework import format_dt, language_of, render, timezone_of
    from paymux.backoffice.i18n import translator

    if page.export:
        tz = timezone_of(request)
        return page.xlsx(translator(language_of(request)), lambda v: format_dt(v, tz, True))
    return render(request, template, page=page, **context)
