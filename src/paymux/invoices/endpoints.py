"""The billers' invoice API (``Authorization: Bearer <biller API key>``): intake, reading, changing,
cancelling, and the changes feed. Errors are RFC 9457 problems."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from paymux.api.deps import HubDep, ReadSessionDep, SessionDep, bearer_token
from paymux.errors import Problem, invalid, unauthorized
from paymux.invoices import reminders, service
from paymux.invoices import upload as uploads
from paymux.invoices import upload_mappings as mappings
from paymux.invoices.models import Biller
from paymux.invoices.schemas import MAX_BATCH, CancelIn, InvoicePatch, number_ok

router = APIRouter(prefix="/api/v1/invoices", tags=["invoices"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid biller API key (problem+json)"},
    403: {"description": "the biller is disabled (problem+json)"},
    404: {"description": "no such invoice (problem+json)"},
    409: {"description": "conflict with the invoice's state or content (problem+json)"},
    422: {"description": "invalid request (problem+json)"},
}

INTAKE_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/InvoiceIn"},
                        {
                            "type": "object",
                            "properties": {
                                "invoices": {
                                    "type": "array",
                                    "maxItems": MAX_BATCH,
                                    "items": {"$ref": "#/components/schemas/InvoiceIn"},
                                }
                            },
                            "required": ["invoices"],
                        },
                    ]
                }
            }
        },
    }
}


async def current_biller(request: Request, hub: HubDep) -> Biller:
    key = bearer_token(request.headers.get("authorization"))
    if len(key) > 200 or not key.isascii():
        raise unauthorized("Invalid API key", "the API key is unknown or revoked")
    async with hub.read_sessions() as session:
        biller = await service.biller_for_key(session, key)
    if biller is None:
        raise unauthorized("Invalid API key", "the API key is unknown or revoked")
    if not biller.enabled:
        raise Problem(403, "biller-disabled", "Biller disabled", f"biller {biller.code} is disabled")
    return biller


BillerDep = Annotated[Biller, Depends(current_biller)]


def _number(number: str) -> str:
    try:
        return number_ok(number)
    except ValueError as e:
        raise invalid("invalid-number", str(e)) from None


@router.post(
    "",
    summary="Send invoices: one, or a batch of up to 10,000",
    openapi_extra=INTAKE_SCHEMA,
    responses={
        200: {"description": "a batch: one result per item, in order; or the same invoice again"},
        201: {"description": "the invoice was created"},
        **PROBLEMS,
    },
)
async def post_invoices(request: Request, biller: BillerDep, session: SessionDep) -> Response:
    """One invoice (201 created; 200 when the same body was sent before; 409 when its number exists with
    other content), or ``{"invoices": [...]}``: 200 with one result per item (``status`` 201, 200,
    409 or 422, with the ``invoice`` or a ``problem``)."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid("invalid-json", "the body is not JSON") from None
    if isinstance(body, dict) and "invoices" in body:
        items = body["invoices"]
        if set(body) != {"invoices"} or not isinstance(items, list):
            raise invalid("invalid-batch", 'a batch is {"invoices": [ ... ]} and nothing else')
        if not 1 <= len(items) <= MAX_BATCH:
            raise invalid("batch-too-large", f"a batch has 1 to {MAX_BATCH} invoices")
        results = await service.intake(session, biller, items)
        await session.commit()
        counts = {"created": 0, "existing": 0, "conflicts": 0, "invalid": 0}
        names = {201: "created", 200: "existing", 409: "conflicts", 422: "invalid"}
        for r in results:
            counts[names[r.status]] += 1
        out = orjson.dumps({**counts, "results": [r.view() for r in results]})
        return Response(out, media_type="application/json")
    if not isinstance(body, dict):
        raise invalid("invalid-invoice", 'the body is an invoice object or a batch {"invoices": [...]}')
    [result] = await service.intake(session, biller, [body])
    if result.problem is not None:
        await session.rollback()
        problem = result.problem
        raise Problem(
            result.status,
            problem["type"].rsplit("/", 1)[-1],
            problem["title"],
            problem.get("detail"),
            **{k: v for k, v in problem.items() if k not in ("type", "title", "status", "detail")},
        )
    await session.commit()
    assert result.invoice is not None
    return JSONResponse(service.invoice_view(result.invoice), status_code=result.status)


@router.get("/changes", summary="The changes feed", responses=PROBLEMS)
async def get_changes(
    biller: BillerDep,
    session: ReadSessionDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Status changes of the biller's invoices after the cursor ``after`` (0: from the start), oldest
    first; ``next`` is the cursor of the next call."""
    return await service.changes(session, biller, after, limit)


@router.get("/upload-mappings", summary="The biller's stored upload mappings", responses=PROBLEMS)
async def list_upload_mappings(biller: BillerDep, session: ReadSessionDep) -> list[dict[str, Any]]:
    """The mappings stored for ``POST /api/v1/invoices/upload`` (``mapping_name``), by name."""
    return [mappings.view(m) for m in await mappings.list_mappings(session, biller)]


@router.get("/upload-mappings/{mapping}", summary="A stored upload mapping", responses=PROBLEMS)
async def get_upload_mapping(mapping: str, biller: BillerDep, session: ReadSessionDep) -> dict[str, Any]:
    return mappings.view(await mappings.get(session, biller, mapping))


@router.put("/upload-mappings/{mapping}", summary="Store an upload mapping by name", responses=PROBLEMS)
async def put_upload_mapping(
    mapping: str,
    biller: BillerDep,
    session: SessionDep,
    body: Annotated[dict[str, Any], Body(description="the mapping, as the upload's mapping field")],
) -> dict[str, Any]:
    """Store (or replace) a mapping to choose by name at upload; 422 names what is wrong."""
    row = await mappings.save(session, biller, mapping, body, f"biller:{biller.code}")
    await session.commit()
    return mappings.view(row)


@router.delete(
    "/upload-mappings/{mapping}",
    status_code=204,
    summary="Delete a stored upload mapping",
    responses=PROBLEMS,
)
async def delete_upload_mapping(mapping: str, biller: BillerDep, session: SessionDep) -> Response:
    await mappings.delete(session, biller, mapping, f"biller:{biller.code}")
    await session.commit()
    return Response(status_code=204)


@router.get("/{number}", summary="An invoice", responses=PROBLEMS)
async def get_invoice(number: str, biller: BillerDep, session: ReadSessionDep) -> dict[str, Any]:
    """The invoice with its status history and its reminders (sent, skipped, asked for)."""
    inv = await service.invoice_of(session, biller, _number(number))
    view = service.invoice_view(inv)
    view["history"] = [
        {"from": h.from_status, "to": h.to_status, "reason": h.reason, "at": h.at.isoformat()}
        for h in await service.history(session, inv)
    ]
    view["reminders"] = [reminders.reminder_view(r) for r in await reminders.reminders_of(session, inv.id)]
    return view


@router.patch("/{number}", summary="Change an open invoice", responses=PROBLEMS)
async def patch_invoice(
    number: str, body: InvoicePatch, biller: BillerDep, session: SessionDep
) -> dict[str, Any]:
    """Amount, due date, payer or description, while the invoice is open and nothing is paid."""
    inv = await service.update(session, biller, _number(number), body)
    await session.commit()
    return service.invoice_view(inv)


@router.post("/{number}/cancel", summary="Cancel an invoice", responses=PROBLEMS)
async def cancel_invoice(
    number: str, biller: BillerDep, session: SessionDep, body: CancelIn | None = None
) -> dict[str, Any]:
    """Cancel an unpaid (or partly paid: the part is flagged for a refund decision) invoice; a
    cancelled one answers as it is; a paid one 409."""
    inv = await service.cancel(session, biller, _number(number), body.reason if body else "")
    await session.commit()
    return service.invoice_view(inv)


async def read_upload(file: UploadFile) -> bytes:
    """The uploaded file's bytes (at most ``MAX_FILE``)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(1 << 20):
        size += len(chunk)
        if size > uploads.MAX_FILE:
            raise uploads.UploadProblem(f"the file is larger than {uploads.MAX_FILE} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/upload", summary="Send invoices in a CSV or Excel file", responses=PROBLEMS)
async def upload_invoices(
    biller: BillerDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="CSV or Excel (xlsx), the first row naming the columns")],
    mapping: Annotated[str | None, Form(max_length=10_000, description="JSON: how to read the file")] = None,
    mapping_name: Annotated[
        str | None, Form(max_length=64, description="the name of a stored mapping, instead of mapping")
    ] = None,
) -> dict[str, Any]:
    """Multipart ``file`` and optional ``mapping`` (JSON, see the docs) or ``mapping_name`` (a stored
    mapping). 200 with one result per row (``created``, ``duplicate``, ``error`` with its message); a
    file that cannot be read 422, nothing taken."""
    cfg = await mappings.resolve(session, biller, mapping, mapping_name)
    data = await read_upload(file)
    out = await uploads.upload(session, biller, data, (file.filename or "")[:200], cfg)
    await session.commit()
    return out


@router.post("/{number}/remind", summary="Remind the payer now", responses=PROBLEMS)
async def remind_invoice(number: str, biller: BillerDep, session: SessionDep) -> dict[str, Any]:
    """Send the payer a reminder now (e-mail and SMS, with the payment link and QR code): 409 when the
    invoice is not open, was reminded today already, or its payer has no e-mail or phone."""
    inv = await service.invoice_of(session, biller, _number(number), lock=True)
    row = await reminders.send_now(session, inv, by=f"biller:{biller.code}")
    await session.commit()
    return reminders.reminder_view(row)
