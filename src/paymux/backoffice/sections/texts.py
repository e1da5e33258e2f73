"""Texts: every back-office text and notification template text per language, searchable by key and
by word, edited in place; edits override the shipped translations (``paymux.texts``), are audited,
and are exported and imported as JSON files."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import Response

from paymux.api.params import parse_id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    ADMINISTRATION,
    DbDep,
    MenuEntry,
    ReadDbDep,
    Section,
    language_of,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.i18n import LANGUAGES, translator
from paymux.downloads import attachment, attachment_built
from paymux.texts import service

router = section_router()
register(
    Section(
        "texts",
        router,
        menu=(MenuEntry("Texts", "/backoffice/texts", P.TEXTS_EDIT, 95, area=ADMINISTRATION),),
        permissions=(P.TEXTS_EDIT,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.TEXTS_EDIT))]
Editor = Annotated[Principal, Depends(require(P.TEXTS_EDIT))]
PAGE_SIZE = 50
KINDS = [("backoffice", "Back office"), ("notification", "Notifications")]
IMPORT_LIMIT = 5 * 1024 * 1024


def _back(value: str) -> str:
    """Where an edit returns: the texts page with the viewer's search (never elsewhere)."""
    return value if value.startswith("/backoffice/texts?") and "\\" not in value else "/backoffice/texts"


@router.get("/texts")
async def texts(request: Request, session: ReadDbDep, me: Reader) -> Response:
    params = request.query_params
    term = params.get("q", "").strip()[:200]
    kind = params.get("kind", "")
    kind = kind if kind in dict(KINDS) else ""
    edited_only = params.get("edited") == "yes"
    found = await service.entries(session, term, kind)
    if edited_only:
        found = [e for e in found if e.edited]
    if params.get("export") == "xlsx":
        _ = translator(language_of(request))
        return attachment_built(lambda: _workbook(found, _), "texts.xlsx")
    pages = max(1, -(-len(found) // PAGE_SIZE))
    page = min(parse_id(params.get("page")) or 1, pages)
    query = {"q": term, "kind": kind, "edited": "yes" if edited_only else ""}

    def url(**changes: Any) -> str:
        return "?" + urlencode({k: v for k, v in {**query, **changes}.items() if v not in ("", None)})

    return render(
        request,
        "texts/list.html",
        rows=found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        total=len(found),
        page=page,
        pages=pages,
        term=term,
        kind=kind,
        kinds=KINDS,
        edited_only=edited_only,
        url=url,
        back="/backoffice/texts" + url(page=page),
        text_languages=list(LANGUAGES),
    )


def _workbook(found: list[service.Entry], _: Any) -> bytes:
    from openpyxl import Workbook  # imported when needed

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("texts")
    ws.append([_("Key"), _("Kind"), *LANGUAGES, _("Edited")])
    for e in found:
        ws.append([e.key, e.kind, *(e.texts[lang] for lang in LANGUAGES), ", ".join(sorted(e.edited))])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@router.post("/texts")
async def texts_save(request: Request, session: DbDep, me: Editor) -> Response:
    form = await request.form()
    back = _back(str(form.get("back", "")))
    try:
        changed = await service.save(
            session, me, str(form.get("language", "")), str(form.get("key", "")), str(form.get("text", ""))
        )
    except service.TextError as e:
        await session.rollback()
        return redirect(back, error=str(e))
    await session.commit()
    service.invalidate(request.app.state.hub)
    return redirect(back, "The text was saved." if changed else "Nothing changed.")


@router.get("/texts/export")
async def texts_export(session: ReadDbDep, me: Reader) -> Response:
    data = await service.export(session)
    body = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode()
    return attachment(body, "paymux-texts.json", "application/json")


@router.post("/texts/import")
async def texts_import(request: Request, session: DbDep, me: Editor) -> Response:
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return redirect("/backoffice/texts", error="Choose a file.")
    raw = await upload.read(IMPORT_LIMIT + 1)
    try:
        if len(raw) > IMPORT_LIMIT:
            raise service.TextError("The file is larger than the limit.")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise service.TextError("This is not a texts file exported by paymux.") from None
        changed = await service.import_texts(session, me, data)
    except service.TextError as e:
        await session.rollback()
        return redirect("/backoffice/texts", error=str(e))
    await session.commit()
    service.invalidate(request.app.state.hub)
    return redirect(
        "/backoffice/texts?edited=yes", "The texts were imported." if changed else "Nothing changed."
    )
