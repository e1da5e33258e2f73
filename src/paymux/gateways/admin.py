"""Admin API for inbound gateways: list, read, create or update (admin tokens)."""

from __future__ import annotations

from fastapi import APIRouter

from paymux.api.deps import AdminDep, HubDep, ReadSessionDep, SessionDep
from paymux.catalog.service import CatalogError
from paymux.errors import invalid, not_found
from paymux.gateways import service
from paymux.gateways.schemas import GatewayIn

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/gateways", response_model=list[GatewayIn])
async def list_gateways(_: AdminDep, session: ReadSessionDep) -> list[GatewayIn]:
    """Inbound gateways; password hashes are shown as ``***`` (sending ``***`` back keeps the hash)."""
    return [
        service.masked(await service.gateway_to_schema(session, g))
        for g in await service.list_gateways(session)
    ]


@router.get("/gateways/{code}", response_model=GatewayIn)
async def get_gateway(code: str, _: AdminDep, session: ReadSessionDep) -> GatewayIn:
    try:
        row = await service.get_gateway(session, code)
    except CatalogError as e:
        raise not_found(str(e)) from None
    return service.masked(await service.gateway_to_schema(session, row))


@router.put("/gateways/{code}")
async def put_gateway(
    code: str, body: GatewayIn, _: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    """Create or update a gateway (its channel, of kind gateway, must exist)."""
    if code != body.code:
        raise invalid("code-mismatch", f"the body's code {body.code!r} differs from the URL's {code!r}")
    try:
        change = await service.upsert_gateway(session, body)
    except CatalogError as e:
        await session.rollback()
        raise invalid("invalid-catalog", str(e)) from None
    await session.commit()
    hub.catalog_changed()
    return {"code": code, "change": change}
