"""The site's icon: ``/favicon.ico`` (browsers ask every site for it) and the icon the pages name."""

from __future__ import annotations

import re

from test_backoffice_support import bo_app


async def test_favicon_is_served_without_login_and_cacheable(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        r = await bo.http.get("/favicon.ico")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/x-icon"
        assert r.content[:4] == b"\0\0\1\0"  # an ICO file
        assert "public" in r.headers["cache-control"] and "max-age=" in r.headers["cache-control"]
        page = await bo.http.get("/backoffice/login")
        icons = re.findall(r'<link rel="icon" href="([^"]+)"', page.text)
        assert icons, "the pages name no icon"
        for href in icons:
            icon = await bo.http.get(href)
            assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/"), href
            assert "public" in icon.headers["cache-control"]
        assert (await bo.http.get("/backoffice/static/nothing.png")).status_code == 404
