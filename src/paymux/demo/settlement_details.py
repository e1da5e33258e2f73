"""Bank details for the demo, so payment orders can be exported from a fresh demo: our own (the debtor,
as ``PAYMUX_SETTLEMENT_DEBTOR_*`` defaults) and each demo provider's (the payees). All invented; the
IBANs carry correct check digits and the Russian numbers have the lengths a bank expects."""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Provider
from paymux.settlement.models import SettlementDetails
from paymux.settlement.service import write_details


def iban(country: str, bban: str) -> str:
    """An IBAN of ``bban`` in ``country`` with its ISO 13616 check digits computed."""
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


DEMO_DEBTOR = {
    "NAME": "Paymux Demo LLC",
    "IBAN": iban("DE", "500105170000000001"),
    "BIC": "DEMODEFFXXX",
    "ACCOUNT": "40702810900000000001",
    "BIK": "044525999",
    "CORR_ACCOUNT": "30101810400000000999",
    "BANK_NAME": "Demo Bank",
    "INN": "7700000001",
    "KPP": "770001001",
}


def set_demo_debtor_defaults() -> None:
    """Our demo bank details, unless the environment gives its own."""
    for k, v in DEMO_DEBTOR.items():
        os.environ.setdefault(f"PAYMUX_SETTLEMENT_DEBTOR_{k}", v)


def provider_details(n: int, name: str) -> dict[str, str]:
    return {
        "beneficiary": name,
        "iban": iban("DE", f"5001051700000{n:05d}"),
        "bic": "DEMODEFFXXX",
        "bank_name": "Demo Bank",
        "account": f"407028109{n:011d}",
        "bik": "044525999",
        "corr_account": "30101810400000000999",
        "inn": f"77{n:08d}",
        "kpp": "770001001",
    }


async def seed_provider_details(session: AsyncSession) -> int:
    """Details for each provider that has none yet (an operator's own edits are kept); returns how many."""
    have = set(await session.scalars(select(SettlementDetails.provider_id)))
    added = 0
    for p in await session.scalars(select(Provider).order_by(Provider.id)):
        if p.id not in have:
            await write_details(session, p.id, provider_details(100 + p.id, p.name), "demo")
            added += 1
    return added
