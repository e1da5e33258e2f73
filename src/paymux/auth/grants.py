"""What a user may give to others: never more than they hold themselves.

A user may give (to a new or existing user) only a role whose permissions they hold, or a predefined
role their own predefined role delegates (``permissions.DELEGATIONS``: Compliance gives Customer
support and Anti-fraud). They may change a user, or a role, only when it holds nothing they do not
(or, for a user, holds a delegated role): changing an Administrator's password or role is as much an
escalation as creating one. A user of an agent's organization (scoped to its channels) manages only
users of that organization and no organizations. Every refusal is a ``GrantRefused`` (HTTP 403).
"""

from __future__ import annotations

from collections.abc import Iterable

from paymux.auth.permissions import DELEGATIONS
from paymux.auth.principal import Principal, permissions_of
from paymux.auth.user_models import Organization, Role

ROLE_BEYOND = "You can only give a role whose permissions you hold yourself."
PERMISSIONS_BEYOND = "You can only give a role permissions you hold yourself."
USER_BEYOND = "This user holds permissions you do not: you cannot change the user."
ROLE_HELD_BEYOND = "This role holds permissions you do not: you cannot change it."
OTHER_ORGANIZATION = "You can only manage users of your own organization."
ORGANIZATIONS_SCOPED = "Users of an agent's organization cannot change organizations."


class GrantRefused(Exception):
    """A change that would give someone more than the acting user holds (HTTP 403).

    ``message`` is an English sentence (a msgid in the back office); ``missing`` the permissions
    the acting user lacks for it, if any."""

    def __init__(self, message: str, missing: Iterable[str] = ()) -> None:
        self.message = message
        self.missing = tuple(sorted(missing))
        super().__init__(message + (f" ({', '.join(self.missing)})" if self.missing else ""))


def missing(principal: Principal, permissions: Iterable[str]) -> frozenset[str]:
    """The permissions in ``permissions`` that ``principal`` does not hold."""
    return frozenset(permissions) - principal.permissions


def delegated(principal: Principal, role: Role) -> bool:
    """True when ``role`` is a predefined role the principal's predefined role delegates."""
    return role.builtin and role.code in DELEGATIONS.get(principal.role_code, frozenset())


def may_give(principal: Principal, role: Role) -> bool:
    return delegated(principal, role) or not missing(principal, permissions_of(role))


def check_give_role(principal: Principal, role: Role) -> None:
    """``principal`` may give ``role`` to a user."""
    if not may_give(principal, role):
        raise GrantRefused(ROLE_BEYOND, missing(principal, permissions_of(role)))


def may_manage_user(principal: Principal, role: Role | None, org: Organization | None) -> bool:
    """``principal`` may change a user with ``role`` in ``org``."""
    if role is None or not may_give(principal, role):
        return False
    return not principal.agent_scoped or (org is not None and org.id == principal.organization_id)


def check_manage_user(principal: Principal, role: Role | None, org: Organization | None) -> None:
    """``principal`` may change a user who has ``role`` in ``org`` (what the user holds now)."""
    if role is None or not may_give(principal, role):
        raise GrantRefused(USER_BEYOND, missing(principal, permissions_of(role)) if role else ())
    check_organization(principal, org)


def check_organization(principal: Principal, org: Organization | None) -> None:
    """``principal`` may put a user in ``org`` (an agent's user: only in their own organization)."""
    if principal.agent_scoped and (org is None or org.id != principal.organization_id):
        raise GrantRefused(OTHER_ORGANIZATION)


def check_change_organizations(principal: Principal) -> None:
    """Organizations decide what their users see: a user scoped to an agent changes none."""
    if principal.agent_scoped:
        raise GrantRefused(ORGANIZATIONS_SCOPED)


def check_role_permissions(principal: Principal, permissions: Iterable[str]) -> None:
    """``principal`` may give a role these permissions."""
    beyond = missing(principal, permissions)
    if beyond:
        raise GrantRefused(PERMISSIONS_BEYOND, beyond)


def may_change_role(principal: Principal, role: Role) -> bool:
    return not missing(principal, permissions_of(role))


def check_change_role(principal: Principal, role: Role) -> None:
    """``principal`` may change (or delete) ``role``: it holds nothing the principal does not."""
    beyond = missing(principal, permissions_of(role))
    if beyond:
        raise GrantRefused(ROLE_HELD_BEYOND, beyond)
