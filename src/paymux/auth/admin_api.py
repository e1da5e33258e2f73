"""Who calls the admin API and what each route needs.

A bearer token is either a personal API token (``pmx_usr_...``: its user's permissions, the user's
IP ranges apply) or a legacy admin token (every permission). Each admin route needs one permission:
declared with ``Depends(require_api(PERMISSION))`` on the route, or, for the routes that use the plain
``AdminDep``, listed in ``ROUTE_PERMISSIONS`` below. A route found in neither is refused to personal
tokens (deny by default); the permission matrix test fails for it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from paymux.auth import permissions as P
from paymux.auth.access import ip_allowed
from paymux.auth.keys import admin_for_token, digest
from paymux.auth.principal import Principal, legacy_admin, principal_for_user
from paymux.auth.proxy import client_ip
from paymux.auth.throttle import key_prefix
from paymux.auth.tokens import PREFIX, user_for_token
from paymux.auth.user_models import Role
from paymux.backoffice.settings import BackofficeSettings, get_backoffice_settings
from paymux.errors import Problem, unauthorized

A = "/api/v1/admin"

ROUTE_PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", f"{A}/catalog"): P.CATALOG_READ,
    ("POST", f"{A}/catalog"): P.CATALOG_WRITE,
    ("POST", f"{A}/catalog/library"): P.CATALOG_WRITE,
    ("GET", f"{A}/providers"): P.CATALOG_READ,
    ("GET", f"{A}/providers/{{code}}"): P.CATALOG_READ,
    ("PUT", f"{A}/providers/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/services"): P.CATALOG_READ,
    ("GET", f"{A}/services/{{code}}"): P.CATALOG_READ,
    ("PUT", f"{A}/services/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/services/{{code}}/route"): P.ROUTING_READ,
    ("GET", f"{A}/channel-groups"): P.CATALOG_READ,
    ("PUT", f"{A}/channel-groups/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/agents"): P.CATALOG_READ,
    ("PUT", f"{A}/agents/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/channels"): P.CHANNELS_READ,
    ("PUT", f"{A}/channels/{{code}}"): P.CATALOG_WRITE,
    ("POST", f"{A}/channels/{{code}}/keys"): P.CHANNEL_KEYS,
    ("POST", f"{A}/{{kind}}s/{{code}}/enable"): P.CATALOG_WRITE,
    ("POST", f"{A}/{{kind}}s/{{code}}/disable"): P.CATALOG_WRITE,
    ("GET", f"{A}/tariffs"): P.TARIFFS_READ,
    ("POST", f"{A}/tariffs"): P.TARIFFS_WRITE,
    ("POST", f"{A}/switches"): P.ROUTING_WRITE,
    ("POST", f"{A}/switches/{{switch_id}}/revert"): P.ROUTING_WRITE,
    ("GET", f"{A}/switches"): P.ROUTING_READ,
    ("GET", f"{A}/balances"): P.BALANCES_READ,
    ("POST", f"{A}/providers/{{code}}/topups"): P.TOPUPS_WRITE,
    ("GET", f"{A}/providers/{{code}}/balance"): P.BALANCES_READ,
    ("GET", f"{A}/payments"): P.PAYMENTS_READ,
    ("GET", f"{A}/payments/{{payment_id}}"): P.PAYMENTS_READ,
    ("GET", f"{A}/health/providers"): P.MONITORING_READ,
    # inbound gateways (gateways/admin.py)
    ("GET", f"{A}/gateways"): P.CATALOG_READ,
    ("GET", f"{A}/gateways/{{code}}"): P.CATALOG_READ,
    ("PUT", f"{A}/gateways/{{code}}"): P.CATALOG_WRITE,
    # registers (registers/endpoints.py)
    ("GET", f"{A}/providers/{{provider}}/register-templates"): P.REGISTERS_READ,
    ("POST", f"{A}/providers/{{provider}}/register-templates"): P.REGISTERS_WRITE,
    ("GET", f"{A}/register-templates/{{template_id}}"): P.REGISTERS_READ,
    ("PUT", f"{A}/register-templates/{{template_id}}"): P.REGISTERS_WRITE,
    ("DELETE", f"{A}/register-templates/{{template_id}}"): P.REGISTERS_WRITE,
    ("POST", f"{A}/register-templates/{{template_id}}/regenerate"): P.REGISTERS_WRITE,
    ("GET", f"{A}/register-tasks"): P.REGISTERS_READ,
    ("GET", f"{A}/register-tasks/{{task_id}}"): P.REGISTERS_READ,
    ("GET", f"{A}/register-tasks/{{task_id}}/file"): P.REGISTERS_READ,
    ("POST", f"{A}/register-tasks/{{task_id}}/retry"): P.REGISTERS_WRITE,
}


def _settings(request: Request) -> BackofficeSettings:
    s = getattr(request.app.state, "backoffice_settings", None)
    return s if isinstance(s, BackofficeSettings) else get_backoffice_settings()


def _unauthorized(detail: str) -> Problem:
    return unauthorized("Invalid admin token", detail)


async def api_principal(request: Request) -> Principal:
    """The caller of an admin API route, from its bearer token (cached for the request).

    Refused tokens count against the client's address and the token's prefix (``auth/throttle.py``)."""
    cached = getattr(request.state, "api_principal", None)
    if isinstance(cached, Principal):
        return cached
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized(
            "Authentication required", "send the token as 'Authorization: Bearer <token>'", presented=False
        )
    ip = client_ip(request, _settings(request))
    hub = request.app.state.hub
    throttle = hub.auth_throttle
    if not throttle.idle:
        refusal = throttle.refusal(ip, key_prefix(token))
        if refusal is not None and not throttle.vouched(digest(token)):
            raise refusal.problem()
    try:
        principal = await _principal_of(hub, token, ip)
    except Problem as e:
        if e.status == 401:
            throttle.failed(ip, key_prefix(token))
        raise
    throttle.vouch(digest(token))
    request.state.api_principal = principal
    return principal


async def _principal_of(hub: Any, token: str, ip: str) -> Principal:
    async with hub.read_sessions() as session:
        if token.startswith(PREFIX + "_"):
            found = await user_for_token(session, token)
            if found is None:
                raise _unauthorized("the API token is unknown, expired or revoked, or its user is disabled")
            row, user = found
            role = await session.get(Role, user.role_id)
            networks = [user.allowed_networks or [], (role.allowed_networks if role else None) or []]
            if not all(ip_allowed(ip, n) for n in networks):
                raise Problem(
                    403,
                    "forbidden",
                    "Not allowed from this address",
                    "the token's user may not use it from this IP address",
                )
            return await principal_for_user(session, user, ip=ip, via=f"token {row.prefix}")
        admin = await admin_for_token(session, token)
        if admin is None:
            raise _unauthorized("the admin token is unknown, expired or revoked")
        return legacy_admin(admin.name, ip)


def _forbidden(permission: str) -> Problem:
    return Problem(
        403,
        "forbidden",
        "Permission denied",
        f"this call needs the permission {permission}",
        permission=permission,
    )


async def admin_principal(request: Request) -> Principal:
    """The caller, who must hold the permission the route needs (``ROUTE_PERMISSIONS``)."""
    principal = await api_principal(request)
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    permission = ROUTE_PERMISSIONS.get((method, getattr(route, "path", "")))
    if permission is None:
        if getattr(request.state, "api_permission_checked", False) or principal.kind == "admin_token":
            return principal
        raise _forbidden("(none declared for this route)")
    if not principal.can(permission):
        raise _forbidden(permission)
    return principal


def require_api(permission: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency for admin API routes: the bearer-token caller, who must hold ``permission``."""

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(api_principal)]
    ) -> Principal:
        if not principal.can(permission):
            raise _forbidden(permission)
        request.state.api_permission_checked = True
        return principal

    dependency.__name__ = f"require_api_{permission}".replace(".", "_")
    return dependency
