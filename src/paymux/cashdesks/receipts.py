"""The printable receipt (PDF, A6) of a cashier's operation, made with fpdf2 (imported when a receipt
is asked for, not at start-up). A system font with Cyrillic (DejaVu Sans) is used where installed;
without it the text is written in Helvetica with the characters it lacks replaced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
TITLES = {
    "topup": "Cash top-up",
    "withdrawal": "Cash withdrawal",
    "reversal": "Counter-operation",
    "redeem_payout": "Redeem payout in cash",
}


@dataclass(frozen=True)
class ReceiptData:
    operation_id: int
    type: str
    state: str
    at: str  # already formatted (UTC)
    organization: str
    desk: str
    cashier: str
    customer: str
    wallet: str
    amount: str  # with the currency
    fee: str
    document: str | None
    reason: str | None
    reverses: int | None


def masked_document(document: str | None) -> str | None:
    """An identity document with all but its last 4 characters hidden."""
    if not document:
        return None
    keep = document[-4:]
    return "*" * max(0, len(document) - 4) + keep if len(document) > 4 else "*" * len(document)


def receipt_pdf(r: ReceiptData) -> bytes:
    from fpdf import FPDF  # imported when needed: the server does not hold it idle

    pdf = FPDF(format=(105, 148))  # A6, in millimetres
    pdf.set_margins(8, 8, 8)
    pdf.set_auto_page_break(True, 8)
    pdf.add_page()
    unicode = FONT.exists()
    if unicode:
        pdf.add_font("DejaVu", "", str(FONT))
        family = "DejaVu"
    else:  # pragma: no cover - the machines have DejaVu
        family = "Helvetica"

    def text(value: str) -> str:
        return value if unicode else value.encode("latin-1", "replace").decode("latin-1")

    pdf.set_font(family, size=12)
    pdf.cell(0, 7, text(TITLES.get(r.type, r.type)), new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(family, size=8)
    pdf.cell(0, 5, text(f"No. {r.operation_id}  {r.at}"), new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.ln(2)
    rows = [
        ("Organization", r.organization),
        ("Cash desk", r.desk),
        ("Cashier", r.cashier),
        ("Customer", r.customer),
        ("Wallet", r.wallet),
        ("Amount", r.amount),
        ("Fee", r.fee),
        ("State", r.state),
    ]
    if r.document:
        rows.append(("Identity document", masked_document(r.document) or ""))
    if r.reverses is not None:
        rows.append(("Reverses operation", str(r.reverses)))
    if r.reason:
        rows.append(("Reason", r.reason))
    for label, value in rows:
        pdf.set_font(family, size=8)
        pdf.cell(30, 5, text(label))
        pdf.multi_cell(0, 5, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.cell(0, 5, text("Cashier's signature: ____________"), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, text("Customer's signature: ____________"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
