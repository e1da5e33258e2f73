"""Messages shown once at the top of a page come from the server (kept by the action that redirected
there), never from the address: ``?msg=`` and ``?error=`` show nothing, on the login page neither."""

from __future__ import annotations

from urllib.parse import quote

from test_backoffice_support import bo_app, flash_of, follow, login, post_form

PHISHING = "Your account is blocked. Call +1 555 0100 at once"


async def test_text_in_the_address_is_never_shown(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        quoted = quote(PHISHING)
        for path in ("/backoffice/login", "/backoffice/2fa"):
            page = await bo.http.get(f"{path}?msg={quoted}&error={quoted}", follow_redirects=True)
            assert PHISHING not in page.text and flash_of(page.text) == "", path
        await login(bo.http, "root")
        for path in ("/backoffice/", "/backoffice/account", "/backoffice/rates", "/backoffice/settlement"):
            page = await bo.http.get(f"{path}?msg={quoted}&error={quoted}")
            assert page.status_code == 200, path
            assert PHISHING not in page.text and flash_of(page.text) == "", path


async def test_an_actions_message_shows_once(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        await login(bo.http, "root")
        r = await post_form(
            bo.http,
            "/backoffice/account",
            "/backoffice/account/settings",
            {"timezone": "Europe/Chisinau", "language": "en"},
        )
        assert "msg=" not in r.headers["location"] and "Saved" not in r.headers["location"]
        assert flash_of((await follow(bo.http, r)).text) == "Saved."
        assert flash_of((await bo.http.get(r.headers["location"])).text) == "", "shown again on reload"
        # another browser with the same address sees nothing
        async with bo.client() as other:
            await login(other, "root")
            r2 = await post_form(
                other,
                "/backoffice/account",
                "/backoffice/account/settings",
                {"timezone": "UTC", "language": "en"},
            )
            assert flash_of((await bo.http.get(r2.headers["location"])).text) == ""
            assert flash_of((await follow(other, r2)).text) == "Saved."
        # an error an action kept shows as an error, once
        r = await post_form(bo.http, "/backoffice/rates", "/backoffice/rates", {"base": "USD", "rate": "x"})
        assert "error=" not in r.headers["location"]
        page = await follow(bo.http, r)
        assert 'class="error" id="flash-error"' in page.text and flash_of(page.text)
        assert flash_of((await bo.http.get("/backoffice/rates")).text) == ""


async def test_the_login_pages_messages_come_from_the_server(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        await login(bo.http, "root")
        r = await post_form(bo.http, "/backoffice/account", "/backoffice/logout", {})
        assert r.headers["location"] == "/backoffice/login"
        assert flash_of((await follow(bo.http, r)).text) == "You are logged out."
        assert flash_of((await bo.http.get("/backoffice/login")).text) == ""
        # a message kept for a page that sends the browser on is shown on the page after it
        await login(bo.http, "root")
        r = await post_form(
            bo.http,
            "/backoffice/account",
            "/backoffice/account/settings",
            {"timezone": "UTC", "language": "en"},
        )
        on = await bo.http.get("/backoffice/login?next=/backoffice/account")
        assert on.status_code == 303 and on.headers["location"] == "/backoffice/account"
        assert flash_of((await follow(bo.http, on)).text) == "Saved."
