"""The documentation's links between its own files resolve: every ``[text](file.md#anchor)`` in
README.md and docs/*.md names a file of the repository and, with an anchor, a heading of that file
(anchors as GitHub makes them from the heading's text)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (code spans as written, links as their text, no
    emphasis markers), lower case, without punctuation other than ``-`` and ``_``, spaces as ``-``."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("**", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for _, line in _prose_lines(path):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, line in _prose_lines(path):
        prose = _CODE_SPAN.sub("", line)
        out.extend((number, target) for target in _LINK.findall(prose))
    return out


def test_slugs_are_githubs() -> None:
    assert slug("Settings (`PAYMUX_BACKOFFICE_*`)") == "settings-paymux_backoffice_"
    assert slug("TLS on paymux's own listener") == "tls-on-paymuxs-own-listener"
    assert slug("PostgreSQL, 2 API + 2 worker processes (`--scale`)") == (
        "postgresql-2-api--2-worker-processes---scale"
    )
    assert slug("### `GET /api/v1/payments/{id}`".lstrip("# ")) == "get-apiv1paymentsid"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_documents_resolve(doc: Path) -> None:
    broken = []
    for number, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        where = f"{doc.relative_to(ROOT)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading with that anchor in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_every_document_is_reachable_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for _, target in links(ROOT / "README.md")}
    assert not [p.name for p in DOCS[1:] if p.resolve() not in linked]


def test_no_working_session_numbers_in_documents_or_code() -> None:
    """Documents and code speak to users, not of the sessions in which they were written."""
    pattern = re.compile(r"\bsessions?[ -]\d+", re.IGNORECASE)
    files = [*DOCS, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py"))]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
