"""Payment elements of invoices (issue 25): QR codes read back by an independent decoder, the
status badge (colours, WCAG AA contrast, deterministic bytes) and the pay button (escaping).

The QR codes are rendered to PNG by segno and decoded by zxing-cpp (a C++ decoder unrelated to
segno); every field of the EPC069-12 and GOST R 56042-2014 payloads is compared exactly.
"""

from __future__ import annotations

import io
import string
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paymux.invoices.elements import ElementError
from paymux.invoices.elements.badge import BADGE_COLOURS, STATUS_NAMES, STATUSES, etag, status_badge_svg
from paymux.invoices.elements.button import pay_button_email_html, pay_button_html
from paymux.invoices.elements.colour import contrast_ratio
from paymux.invoices.elements.qr import (
    epc_payload,
    epc_qr,
    gost_payload,
    gost_qr,
    link_qr,
    png,
    svg,
)

try:  # the independent decoder (pyproject `dev` extras: zxing-cpp, pillow)
    import zxingcpp
    from PIL import Image

    _DECODER_ERROR = ""
except ImportError as exc:  # pragma: no cover - only without the dev extras
    _DECODER_ERROR = f"the QR decoder cannot be imported ({exc}); run `make install`"

needs_decoder = pytest.mark.skipif(bool(_DECODER_ERROR), reason=_DECODER_ERROR or "decoder present")

SVG_NS = "{http://www.w3.org/2000/svg}"


def decode_png(data: bytes) -> bytes:
    """The raw bytes of the one QR code in a PNG, read by zxing-cpp; asserts level M."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, "exactly one QR code expected"
    assert found[0].ec_level == "M"
    return bytes(found[0].bytes)


# ------------------------------------------------------------------------------------------------
# valid identifiers built with their check digits (ISO 13616 IBAN, ISO 11649 RF)


def _mod97(alnum: str) -> int:
    return int("".join(str(int(c, 36)) for c in alnum)) % 97


def make_iban(country: str, bban: str) -> str:
    check = 98 - _mod97(bban + country + "00")
    return f"{country}{check:02d}{bban}"


def make_rf(body: str) -> str:
    check = 98 - _mod97(body + "RF00")
    return f"RF{check:02d}{body}"


IBAN_DE = "DE89370400440532013000"
IBAN_RO = "RO49AAAA1B31007593840000"
RF = "RF18539007547034"


def test_identifier_helpers_agree_with_published_examples() -> None:
    assert make_iban("DE", "370400440532013000") == IBAN_DE
    assert make_iban("RO", "AAAA1B31007593840000") == IBAN_RO
    assert make_rf("539007547034") == RF


# ------------------------------------------------------------------------------------------------
# EPC069-12


@needs_decoder
def test_epc_every_field_read_back_exactly() -> None:
    qr = epc_qr(
        name="Ion Popescu SRL",
        iban="RO49 AAAA 1B31 0075 9384 0000",
        bic="AAAARO2X",
        amount_minor=123_456,
        reference="RF18 5390 0754 7034",
        purpose="GDDS",
        information="Factura 2026-0042",
    )
    assert qr.error == "M" and qr.version <= 13 and not qr.is_micro
    raw = decode_png(png(qr))
    lines = raw.decode("utf-8").split("\n")
    assert lines == [
        "BCD",
        "002",
        "1",
        "SCT",
        "AAAARO2X",
        "Ion Popescu SRL",
        IBAN_RO,
        "EUR1234.56",
        "GDDS",
        RF,
        "",
        "Factura 2026-0042",
    ]


@needs_decoder
def test_epc_unstructured_text_non_ascii_name_and_trailing_elements_left_out() -> None:
    qr = epc_qr(
        name="Ștefan Țurcanu Energie SRL — Müller",
        iban=IBAN_DE,
        amount_minor=5,
        text="Rechnung Nr. 17 / factura nr. 17",
    )
    raw = decode_png(png(qr, scale=3))
    text = raw.decode("utf-8")
    assert "Ștefan Țurcanu Energie SRL — Müller".encode() in raw  # UTF-8 (character set 1)
    assert text.split("\n") == [
        "BCD",
        "002",
        "1",
        "SCT",
        "",  # no BIC: optional in version 002
        "Ștefan Țurcanu Energie SRL — Müller",
        IBAN_DE,
        "EUR0.05",
        "",
        "",  # no structured reference
        "Rechnung Nr. 17 / factura nr. 17",
    ]
    assert not text.endswith("\n")


@pytest.mark.parametrize(
    ("minor", "written"),
    [
        (1, "EUR0.01"),
        (10, "EUR0.10"),
        (100, "EUR1.00"),
        (12_345, "EUR123.45"),
        (99_999_999_999, "EUR999999999.99"),
    ],
)
def test_epc_amount_always_two_decimals(minor: int, written: str) -> None:
    payload = epc_payload(name="A", iban=IBAN_DE, amount_minor=minor, reference=RF)
    assert payload.split("\n")[7] == written


def test_epc_without_amount_leaves_the_line_empty() -> None:
    assert epc_payload(name="A", iban=IBAN_DE, amount_minor=None, text="x").split("\n")[7] == ""


def test_epc_mandatory_only_is_seven_lines() -> None:
    assert epc_payload(name="A", iban=IBAN_DE, amount_minor=None).split("\n") == [
        "BCD",
        "002",
        "1",
        "SCT",
        "",
        "A",
        IBAN_DE,
    ]


EPC_OK = {"name": "Ion Popescu SRL", "iban": IBAN_DE, "amount_minor": 100, "reference": RF}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": -100}, "amount_minor"),
        ({"amount_minor": 100_000_000_000}, "amount_minor"),
        ({"amount_minor": True}, "amount_minor"),
        ({"amount_minor": 1.5}, "amount_minor"),
        ({"currency": "RON"}, "currency"),
        ({"name": ""}, "name"),
        ({"name": "x" * 71}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"name": " padded"}, "name"),
        ({"iban": "DE88370400440532013000"}, "iban"),  # wrong check digits
        ({"iban": "DE89"}, "iban"),
        ({"iban": "not an iban"}, "iban"),
        ({"bic": "COBA"}, "bic"),
        ({"bic": "COBADEFF1"}, "bic"),
        ({"reference": "RF19539007547034"}, "reference"),  # wrong check digits
        ({"reference": "INV-42"}, "reference"),
        ({"reference": "RF18" + "1" * 22}, "reference"),  # more than 25 characters
        ({"text": "also text"}, "reference"),  # structured XOR unstructured
        ({"reference": None, "text": "x" * 141}, "text"),
        ({"purpose": "GDDSX"}, "purpose"),
        ({"purpose": "gd-s"}, "purpose"),
        ({"information": "i" * 71}, "information"),
        ({"reference": None, "name": "ш" * 70, "text": "ш" * 140}, "payload"),  # > 331 bytes
    ],
)
def test_epc_refuses_values_outside_the_standard(change: dict[str, object], field: str) -> None:
    with pytest.raises(ElementError) as caught:
        epc_qr(**{**EPC_OK, **change})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_epc_payload_of_exactly_331_bytes_fits_version_13_level_m_and_332_is_refused() -> None:
    base = {
        "name": "N" * 70,
        "iban": "MT84MALT011000012345MTLCAST001S",
        "bic": "AAAAMTMTXXX",
        "amount_minor": 99_999_999_999,
        "purpose": "GDDS",
        "text": "T" * 140,
    }
    fitting = [k for k in range(1, 71) if _epc_size(base, "I" * k) <= 331]
    k = max(fitting)
    payload = epc_payload(**base, information="I" * k)  # type: ignore[arg-type]
    assert len(payload.encode()) == 331
    qr = epc_qr(**base, information="I" * k)  # type: ignore[arg-type]
    assert qr.version <= 13 and qr.error == "M"
    with pytest.raises(ElementError) as caught:
        epc_qr(**base, information="I" * (k + 1))  # type: ignore[arg-type]
    assert caught.value.field == "payload"


def _epc_size(base: dict[str, object], information: str) -> int:
    try:
        return len(epc_payload(**base, information=information).encode())  # type: ignore[arg-type]
    except ElementError:
        return 10**6


_NAME_CHARS = (
    string.ascii_letters
    + string.digits
    + " .,-&'/"
    + "ĂÂÎȘȚăâîșțÄÖÜäöüßéèàçñ"
    + "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВ"
)


def _one_line(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_NAME_CHARS, min_size=1, max_size=max_size).map(str.strip).filter(bool)


@needs_decoder
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_one_line(70),
    country=st.sampled_from(["DE", "AT", "NL", "RO", "FI"]),
    bban=st.text(alphabet=string.digits, min_size=12, max_size=24),
    bic=st.one_of(st.none(), st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)),
    amount=st.one_of(st.none(), st.integers(min_value=1, max_value=99_999_999_999)),
    ref_body=st.one_of(
        st.none(), st.text(alphabet=string.ascii_uppercase + string.digits, min_size=1, max_size=21)
    ),
    text=_one_line(140),
    purpose=st.one_of(st.none(), st.from_regex(r"[A-Z]{4}", fullmatch=True)),
    information=st.one_of(st.none(), _one_line(70)),
)
def test_epc_random_valid_inputs_round_trip(
    name: str,
    country: str,
    bban: str,
    bic: str | None,
    amount: int | None,
    ref_body: str | None,
    text: str,
    purpose: str | None,
    information: str | None,
) -> None:
    iban = make_iban(country, bban)
    reference = make_rf(ref_body) if ref_body is not None else None
    kwargs = {
        "name": name,
        "iban": iban,
        "bic": bic,
        "amount_minor": amount,
        "reference": reference,
        "text": None if reference else text,
        "purpose": purpose,
        "information": information,
    }
    try:
        qr = epc_qr(**kwargs)  # type: ignore[arg-type]
    except ElementError as exc:
        assume(exc.field != "payload")  # a random combination over 331 bytes is refused, fine
        raise
    lines = decode_png(png(qr, scale=2)).decode("utf-8").split("\n")
    lines += [""] * (12 - len(lines))
    assert lines[:4] == ["BCD", "002", "1", "SCT"]
    assert lines[4] == (bic or "")
    assert lines[5] == name
    assert lines[6] == iban
    assert lines[7] == ("" if amount is None else f"EUR{amount // 100}.{amount % 100:02d}")
    assert lines[8] == (purpose or "")
    assert lines[9] == (reference or "")
    assert lines[10] == ("" if reference else text)
    assert lines[11] == (information or "")


# ------------------------------------------------------------------------------------------------
# GOST R 56042-2014 (ST00012)

GOST_OK = {
    "name": "ООО «Ромашка»",
    "personal_acc": "40702810138250123017",
    "bank_name": 'ПАО "БАНК"',
    "bic": "044525225",
    "corresp_acc": "30101810400000000225",
}


@needs_decoder
def test_gost_every_field_read_back_exactly() -> None:
    qr = gost_qr(
        **GOST_OK,
        sum_minor=1_234_550,
        purpose="Оплата счёта № 17 за ноябрь",
        payee_inn="7701234567",
        kpp="770101001",
        pers_acc="ЛС-000123",
        extra={"LastName": "Иванов", "PayerAddress": "г. Москва, ул. Ленина, д. 1", "UIN": "0316"},
    )
    assert qr.error == "M" and not qr.is_micro
    raw = decode_png(png(qr))
    text = raw.decode("utf-8")  # encoding flag 2 = UTF-8
    fields = text.split("|")
    assert fields[0] == "ST00012"
    assert fields[1:] == [
        "Name=ООО «Ромашка»",
        "PersonalAcc=40702810138250123017",
        'BankName=ПАО "БАНК"',
        "BIC=044525225",
        "CorrespAcc=30101810400000000225",
        "Sum=1234550",
        "Purpose=Оплата счёта № 17 за ноябрь",
        "PayeeINN=7701234567",
        "KPP=770101001",
        "PersAcc=ЛС-000123",
        "LastName=Иванов",
        "PayerAddress=г. Москва, ул. Ленина, д. 1",
        "UIN=0316",
    ]


@needs_decoder
def test_gost_mandatory_only() -> None:
    raw = decode_png(png(gost_qr(**GOST_OK)))
    assert raw.decode("utf-8") == gost_payload(**GOST_OK)
    assert raw.decode("utf-8") == (
        'ST00012|Name=ООО «Ромашка»|PersonalAcc=40702810138250123017|BankName=ПАО "БАНК"'
        "|BIC=044525225|CorrespAcc=30101810400000000225"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bic": "04452522"}, "bic"),
        ({"bic": "04452522X"}, "bic"),
        ({"personal_acc": "4070281013825012301"}, "personal_acc"),
        ({"personal_acc": "4070281013825012301A"}, "personal_acc"),
        ({"corresp_acc": "301018104000000002250"}, "corresp_acc"),
        ({"name": "ООО |Ромашка"}, "name"),  # the separator
        ({"name": "x" * 161}, "name"),
        ({"name": "ш" * 160}, "name"),  # mandatory block > 300 bytes
        ({"name": ""}, "name"),
        ({"bank_name": "Б" * 46}, "bank_name"),
        ({"sum_minor": 0}, "sum_minor"),
        ({"sum_minor": 10**18}, "sum_minor"),  # 19 digits
        ({"sum_minor": "100"}, "sum_minor"),
        ({"purpose": "п" * 211}, "purpose"),
        ({"purpose": "a|b"}, "purpose"),
        ({"purpose": "line\nbreak"}, "purpose"),
        ({"payee_inn": "77012345678"}, "payee_inn"),
        ({"kpp": "77010100"}, "kpp"),
        ({"extra": {"Nonsense": "x"}}, "extra.Nonsense"),
        ({"extra": {"Name=x|Sum": "1"}}, "extra.Name=x|Sum"),
        ({"sum_minor": 100, "extra": {"Sum": "200"}}, "extra.Sum"),  # twice
        ({"extra": {"UIN": "1" * 26}}, "extra.UIN"),
        ({"extra": {"LastName": "Ива|нов"}}, "extra.LastName"),
    ],
)
def test_gost_refuses_values_outside_the_standard(change: dict[str, object], field: str) -> None:
    with pytest.raises(ElementError) as caught:
        gost_qr(**{**GOST_OK, **change})  # type: ignore[arg-type]
    assert caught.value.field == field


_GOST_TEXT = st.text(alphabet=_NAME_CHARS + '«»"№()', min_size=1, max_size=45).map(str.strip).filter(bool)


@needs_decoder
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_GOST_TEXT,
    personal_acc=st.from_regex(r"[0-9]{20}", fullmatch=True),
    bank_name=_GOST_TEXT,
    bic=st.from_regex(r"[0-9]{9}", fullmatch=True),
    corresp_acc=st.from_regex(r"[0-9]{20}", fullmatch=True),
    sum_minor=st.one_of(st.none(), st.integers(min_value=1, max_value=10**18 - 1)),
    purpose=st.one_of(st.none(), _GOST_TEXT),
    payee_inn=st.one_of(st.none(), st.from_regex(r"[0-9]{10}|[0-9]{12}", fullmatch=True)),
)
def test_gost_random_valid_inputs_round_trip(
    name: str,
    personal_acc: str,
    bank_name: str,
    bic: str,
    corresp_acc: str,
    sum_minor: int | None,
    purpose: str | None,
    payee_inn: str | None,
) -> None:
    qr = gost_qr(
        name=name,
        personal_acc=personal_acc,
        bank_name=bank_name,
        bic=bic,
        corresp_acc=corresp_acc,
        sum_minor=sum_minor,
        purpose=purpose,
        payee_inn=payee_inn,
    )
    fields = decode_png(png(qr, scale=2)).decode("utf-8").split("|")
    assert fields[0] == "ST00012"
    pairs = [f.split("=", 1) for f in fields[1:]]
    expected = [
        ["Name", name],
        ["PersonalAcc", personal_acc],
        ["BankName", bank_name],
        ["BIC", bic],
        ["CorrespAcc", corresp_acc],
    ]
    if sum_minor is not None:
        expected.append(["Sum", str(sum_minor)])
    if purpose is not None:
        expected.append(["Purpose", purpose])
    if payee_inn is not None:
        expected.append(["PayeeINN", payee_inn])
    assert pairs == expected


# ------------------------------------------------------------------------------------------------
# the payment link and rendering


@needs_decoder
def test_link_qr_read_back() -> None:
    url = "https://pay.example.test/pay/Zx9_-kQ2mV8rT0aLw3nYbC4dE5fG6hJ7"
    assert decode_png(png(link_qr(url))).decode("ascii") == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "/pay/abc",
        "ftp://x.test/a",
        "https://x.test/a b",
        "",
        "https://",
    ],
)
def test_link_qr_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(ElementError):
        link_qr(url)


def test_png_and_svg_are_deterministic_and_svg_is_embeddable() -> None:
    qr = epc_qr(**EPC_OK)  # type: ignore[arg-type]
    assert png(qr) == png(epc_qr(**EPC_OK))  # type: ignore[arg-type]
    image = svg(qr, title='Pay <Ion> & "SRL"')
    assert image == svg(epc_qr(**EPC_OK), title='Pay <Ion> & "SRL"')  # type: ignore[arg-type]
    assert image.startswith(b"<svg ") and b"<?xml" not in image
    root = ET.fromstring(image)
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "paymux-qr-title"
    title = root.find(f"{SVG_NS}title")
    assert title is not None and title.text == 'Pay <Ion> & "SRL"' and title.get("id") == "paymux-qr-title"
    with pytest.raises(ElementError):
        png(qr, scale=0)
    second = ET.fromstring(svg(qr, title="Second", element_id="qr-2"))
    assert second.get("id") == "qr-2" and second.get("aria-labelledby") == "qr-2-title"
    with pytest.raises(ElementError) as caught:
        svg(qr, title="x", element_id='a" onload="alert(1)')
    assert caught.value.field == "element_id"


@needs_decoder
def test_png_scales_still_decode() -> None:
    url = "https://pay.example.test/pay/t"
    for scale in (1, 2, 8):
        data = png(link_qr(url), scale=scale)
        assert Image.open(io.BytesIO(data)).size[0] > 0
        if scale > 1:  # 1 px per module is below what a camera needs; larger ones must decode
            assert decode_png(data) == url.encode()


# ------------------------------------------------------------------------------------------------
# the status badge


def _badge_parts(data: bytes) -> tuple[ET.Element, list[str], list[tuple[str, str]]]:
    root = ET.fromstring(data)
    fills = [r.get("fill", "") for r in root.iter(f"{SVG_NS}rect")]
    texts = [(t.text or "", t.get("fill", "")) for t in root.iter(f"{SVG_NS}text")]
    return root, fills, texts


@pytest.mark.parametrize("language", sorted(STATUS_NAMES))
@pytest.mark.parametrize("status", STATUSES)
def test_badge_text_meets_wcag_aa_contrast(status: str, language: str) -> None:
    data = status_badge_svg(status, "Invoice 2026-17", language=language)
    root, fills, texts = _badge_parts(data)
    (label_text, label_fg), (status_text, status_fg) = texts
    assert label_text == "Invoice 2026-17"
    assert status_text == STATUS_NAMES[language][status]
    label_bg, status_bg = fills[0], fills[1]
    assert contrast_ratio(label_fg, label_bg) >= 4.5
    assert contrast_ratio(status_fg, status_bg) >= 4.5
    assert root.get("role") == "img"
    assert root.findtext(f"{SVG_NS}title") == f"Invoice 2026-17: {status_text}"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == language


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_badge_colour_families() -> None:
    def status_fill(status: str) -> tuple[int, int, int]:
        return _rgb(_badge_parts(status_badge_svg(status, "x", language="en"))[1][1])

    for grey in ("open", "cancelled", "refunded"):
        r, g, b = status_fill(grey)
        assert r == g == b
    r, g, b = status_fill("paid")
    assert g > r and g > b  # green
    r, g, b = status_fill("overdue")
    assert r > 2 * g and r > 2 * b  # red
    r, g, b = status_fill("partially_paid")
    assert r > g > b and r > 200  # amber
    assert set(BADGE_COLOURS) == set(STATUSES)


def test_badge_bytes_are_deterministic_and_etag_follows_them() -> None:
    a = status_badge_svg("paid", "Factura 17", language="ro")
    b = status_badge_svg("paid", "Factura 17", language="ro")
    c = status_badge_svg("overdue", "Factura 17", language="ro")
    assert a == b and etag(a) == etag(b)
    assert etag(a) != etag(c)
    assert etag(a).startswith('"') and etag(a).endswith('"') and len(etag(a)) == 34


def test_badge_escapes_the_label() -> None:
    data = status_badge_svg("open", '<script>alert("x")</script>', language="en")
    assert b"<script>" not in data
    root, _, texts = _badge_parts(data)
    assert texts[0][0] == '<script>alert("x")</script>'
    assert not list(root.iter("script")) and not list(root.iter(f"{SVG_NS}script"))


@pytest.mark.parametrize(
    ("status", "label", "language", "field"),
    [
        ("unpaid", "x", "en", "status"),
        ("paid", "x", "de", "language"),
        ("paid", "", "en", "label"),
        ("paid", "x" * 41, "en", "label"),
        ("paid", "a\nb", "en", "label"),
    ],
)
def test_badge_refusals(status: str, label: str, language: str, field: str) -> None:
    with pytest.raises(ElementError) as caught:
        status_badge_svg(status, label, language=language)
    assert caught.value.field == field


# ------------------------------------------------------------------------------------------------
# the pay button


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    parser.close()
    return parser


HOSTILE_LABEL = '<script>alert("pwned")</script> & "Pay"'
HOSTILE_URL = 'https://pay.example.test/pay/abc?x="><script>alert(1)</script>&y=1'


@pytest.mark.parametrize("render", [pay_button_html, pay_button_email_html])
def test_button_escapes_label_and_url(render: object) -> None:
    html = render(HOSTILE_URL, label=HOSTILE_LABEL)  # type: ignore[operator]
    assert "<script>" not in html
    parsed = _parse(html)
    assert [t for t, _ in parsed.tags if t == "script"] == []
    links = [attrs for t, attrs in parsed.tags if t == "a"]
    assert len(links) == 1 and links[0]["href"] == HOSTILE_URL
    assert "".join(parsed.text) == HOSTILE_LABEL


def test_button_html_is_a_styled_link() -> None:
    parsed = _parse(pay_button_html("https://x.test/pay/t", label="Pay now", colour="#0B5CAD"))
    (tag, attrs), *_ = parsed.tags
    assert tag == "a" and "background:#0b5cad" in (attrs["style"] or "")
    assert "".join(parsed.text) == "Pay now"


def test_email_button_is_a_presentation_table_with_inline_styles() -> None:
    html = pay_button_email_html("https://x.test/pay/t", label="Plătiți", colour="#1e7b34")
    parsed = _parse(html)
    tags = [t for t, _ in parsed.tags]
    assert tags == ["table", "tr", "td", "a"]
    table, td, link = parsed.tags[0][1], parsed.tags[2][1], parsed.tags[3][1]
    assert table["role"] == "presentation"
    assert td["bgcolor"] == "#1e7b34" and "background:#1e7b34" in (td["style"] or "")
    assert "color:#ffffff" in (link["style"] or "")
    assert "<style" not in html and "class=" not in html
    assert "".join(parsed.text) == "Plătiți"


@pytest.mark.parametrize("render", [pay_button_html, pay_button_email_html])
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "JaVaScRiPt:alert(1)"}, "url"),
        ({"url": "data:text/html,<b>x</b>"}, "url"),
        ({"url": "//evil.test/x"}, "url"),
        ({"url": "https://x.test/a\nb"}, "url"),
        ({"colour": "red;background:url(https://evil.test)"}, "colour"),
        ({"text_colour": "#fff;x:y"}, "text_colour"),
        ({"colour": "#ffff00", "text_colour": "#ffffff"}, "text_colour"),  # 1.07:1
        ({"label": ""}, "label"),
        ({"label": "x" * 81}, "label"),
    ],
)
def test_button_refusals(render: object, kwargs: dict[str, str], field: str) -> None:
    args = {"url": "https://x.test/pay/t", "label": "Pay", **kwargs}
    url = args.pop("url")
    with pytest.raises(ElementError) as caught:
        render(url, **args)  # type: ignore[operator]
    assert caught.value.field == field
