"""The OSMP answer document: a small, fixed XML, written by hand (nothing is ever parsed)."""

from __future__ import annotations

import re

# characters XML 1.0 does not allow (control characters other than tab, LF, CR; surrogates; FFFE/FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
_SPECIAL = re.compile("[&<>\"']")


def text(value: str) -> str:
    """``value`` as XML character data: escaped, with characters XML cannot carry dropped."""
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], _NOT_XML.sub("", value))


def response(
    *,
    txn_id: str | None,
    result: int,
    comment: str,
    prv_txn: int | str | None = None,
    sum: str | None = None,
    fields: dict[str, str] | None = None,
) -> bytes:
    """``<response>`` with osmp_txn_id (unless ``txn_id`` is None: a getInfo without one), prv_txn
    (when there is a payment), sum (when known), result, comment and ``<fields>`` (when there are
    any: ``<field1 name="...">``, ``<field2 ...>``...), in that order, UTF-8."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<response>']
    if txn_id is not None:
        parts.append(f"<osmp_txn_id>{text(txn_id)}</osmp_txn_id>")
    if prv_txn is not None:
        parts.append(f"<prv_txn>{text(str(prv_txn))}</prv_txn>")
    if sum is not None:
        parts.append(f"<sum>{text(sum)}</sum>")
    parts.append(f"<result>{int(result)}</result>")
    parts.append(f"<comment>{text(comment)}</comment>")
    if fields:
        parts.append("<fields>")
        for i, (name, value) in enumerate(fields.items(), start=1):
            parts.append(f'<field{i} name="{text(name)}">{text(value)}</field{i}>')
        parts.append("</fields>")
    parts.append("</response>\n")
    return "".join(parts).encode("utf-8")
