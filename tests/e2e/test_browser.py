"""End-to-end: the owner web app in a real browser (Debian's chromium,
headless, driven over the DevTools protocol by cdp.py). One daemon serves
arne (http://127.0.0.1:<port>) and marcus (http://localhost:<port>); the
browser signs in to arne with a `posta-server login` link and is used as a
person would. Screenshots of each screen go to $POSTA_SCREENSHOTS.
"""
import json
import os
import signal
import subprocess
import tempfile
import time

from cdp import Browser
from posta import BINARY, Daemon, free_port, main, test, wait_for

SCREENSHOTS = os.environ.get("POSTA_SCREENSHOTS", os.path.join(tempfile.gettempdir(), "posta-screenshots"))
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>alert(1)</script>'


def api(daemon, host, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    reply = daemon.request(host, method, path, headers, data)
    assert reply.status < 300, reply
    return reply.json() if reply.body else None


def delivered(daemon, host, token, message_id):
    found = api(daemon, host, token, "GET", "/api/deliveries")["deliveries"]
    return [d for d in found if d["message_id"] == message_id and d["state"] == "delivered"]


def send(daemon, host, token, to, subject, body="hello from marcus"):
    message = api(daemon, host, token, "POST", "/api/messages", {"to": to, "subject": subject, "body": body})
    wait_for(lambda: delivered(daemon, host, token, message["id"]), 20, f"{subject!r} delivered")
    return message["id"]


def login_link(daemon, slug):
    r = subprocess.run([BINARY, "login", slug, "--manifest", daemon.manifest, "--config", daemon.config_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"posta-server login {slug} failed ({r.returncode}): {r.stderr}"
    return r.stdout.strip()


def subjects(browser):
    return browser.evaluate("[...document.querySelectorAll('.item .subject')].map(e => e.textContent)")


def shot(browser, name):
    return browser.screenshot(os.path.join(SCREENSHOTS, f"{name}.png"))


@test
def a_browser_without_a_session_gets_the_sign_in_screen():
    port = free_port()
    arne = {"slug": "arne", "url": f"http://127.0.0.1:{port}", "name": "Arne"}
    with Daemon([arne], args=["--listen", f"127.0.0.1:{port}"]) as d, Browser() as b:
        b.navigate(arne["url"] + "/")
        b.wait("document.querySelector('#signin-title')", what="the sign-in screen")
        assert b.evaluate("document.querySelector('#identity-name').textContent") == "Arne"
        assert b.evaluate("document.querySelector('#nav').hidden") is True
        assert b.evaluate("document.activeElement.id") == "signin-title"
        shot(b, "signin")
        assert b.errors() == [], b.errors()


@test
def an_owner_reads_writes_and_follows_deliveries_in_the_browser():
    port = free_port()
    arne = {"slug": "arne", "url": f"http://127.0.0.1:{port}", "name": "Arne"}
    marcus = {"slug": "marcus", "url": f"http://localhost:{port}", "name": "Marcus"}
    fast = {"delivery_retry_base": "200ms", "delivery_retry_max": "1s"}
    arne_host, marcus_host = f"127.0.0.1:{port}", f"localhost:{port}"
    with Daemon([arne, marcus], config=fast, args=["--listen", f"127.0.0.1:{port}"]) as d, Browser() as b:
        arne_token, marcus_token = d.token("arne"), d.token("marcus")
        send(d, marcus_host, marcus_token, arne["url"], "Before you signed in")
        hostile_id = send(d, marcus_host, marcus_token, arne["url"], "Hostile", HOSTILE)

        # Sign in with a login link; its code leaves the address bar at once.
        link = login_link(d, "arne")
        assert link.startswith(arne["url"] + "/#code="), link
        b.navigate(link)
        b.wait("document.querySelectorAll('.item').length === 2", what="the inbox with two messages")
        assert b.evaluate("location.hash") == "#/inbox"
        assert subjects(b) == ["Hostile", "Before you signed in"], subjects(b)
        assert b.evaluate("document.title").startswith("(2) "), b.evaluate("document.title")
        shot(b, "inbox")

        # A delivery made while the page is open appears without a reload.
        b.evaluate("window.notReloaded = true")
        live_id = send(d, marcus_host, marcus_token, arne["url"], "While you watched")
        started = time.monotonic()
        b.wait("document.querySelector('.item .subject')?.textContent === 'While you watched'", timeout=2,
               what="the new message at the top within 2 s")
        print(f"  the delivered message appeared {time.monotonic() - started:.2f}s after its delivery")
        assert b.evaluate("window.notReloaded === true")
        assert b.evaluate("document.title").startswith("(3) ")

        # Opening it marks it read, as the API tells.
        b.click(f'.item[data-id="{live_id}"] a')
        b.wait("document.querySelector('#message-subject')?.textContent === 'While you watched'")
        wait_for(lambda: api(d, arne_host, arne_token, "GET", f"/api/messages/{live_id}")["read"], 5,
                 "the opened message to be read")
        b.wait("document.title.startsWith('(2) ')", what="the unread count to drop")
        shot(b, "message")

        # A hostile body is text: its characters show, no element is made.
        b.evaluate(f"location.hash = '#/message/{hostile_id}'")
        b.wait("document.querySelector('#message-subject')?.textContent === 'Hostile'")
        assert b.evaluate("document.querySelector('.body').textContent") == HOSTILE
        assert b.evaluate("document.querySelector('.body').children.length") == 0
        assert b.evaluate("document.querySelectorAll('img, script:not([type=module])').length") == 0
        assert "pwned" not in b.evaluate("document.title")
        assert not b.events_named("Page.javascriptDialogOpening")

        # Mark it unread again; then delete it, once the owner confirms.
        wait_for(lambda: api(d, arne_host, arne_token, "GET", f"/api/messages/{hostile_id}")["read"], 5, "read")
        b.click('[data-slot="toggle-read"]')
        wait_for(lambda: not api(d, arne_host, arne_token, "GET", f"/api/messages/{hostile_id}")["read"], 5,
                 "the message to be unread again")
        b.click('[data-slot="delete"]')
        b.wait("document.querySelector('dialog[open]')", what="the confirmation")
        b.click('dialog button[value="delete"]')
        b.wait("location.hash === '#/inbox' && document.querySelectorAll('.item').length === 2")
        bearer = {"Authorization": f"Bearer {arne_token}"}
        assert d.request(arne_host, "GET", f"/api/messages/{hostile_id}", bearer).status == 404

        # Compose: a bad recipient is shown at its field; a good one is delivered.
        b.evaluate("location.hash = '#/compose'")
        b.wait("document.querySelector('#to')")
        b.type_into("#to", "not a url")
        b.type_into("#subject", "Hello Marcus")
        b.type_into("#body", "Written in a browser.")
        b.click("button[type=submit]")
        b.wait("!document.querySelector('#to-error').hidden", what="the error at the To field")
        assert b.evaluate("document.activeElement.id") == "to"
        assert b.evaluate("document.querySelector('#to').getAttribute('aria-invalid')") == "true"
        b.evaluate("document.querySelector('#to').value = ''")
        b.type_into("#to", marcus["url"])
        shot(b, "compose")
        b.click("button[type=submit]")
        b.wait("document.querySelector('#message-subject')?.textContent === 'Hello Marcus'")
        b.wait("document.querySelector('.recipient[data-state=delivered]')", timeout=20,
               what="the sent message's delivery to become delivered")
        inbox = api(d, marcus_host, marcus_token, "GET", "/api/messages")["messages"]
        assert [m["subject"] for m in inbox if m["from"] == arne["url"]] == ["Hello Marcus"], inbox

        b.evaluate("location.hash = '#/sent'")
        b.wait("document.querySelector('.item .recipient[data-state=delivered]')", what="sent with its state")
        assert b.evaluate("document.querySelector('.item .recipient .to').textContent") == marcus["url"]
        shot(b, "sent")

        # The worker dies; the page catches up once a new one serves.
        b.evaluate("location.hash = '#/inbox'")
        b.wait("document.querySelectorAll('.item').length === 2")
        mark = len(d.log())
        os.kill(d.worker_pid("arne"), signal.SIGKILL)
        new_pid = d.worker_pid("arne", start=mark, timeout=20)
        send(d, marcus_host, marcus_token, arne["url"], "After the restart")
        b.wait("document.querySelector('.item .subject')?.textContent === 'After the restart'", timeout=15,
               what="the page to catch up after the worker's restart")
        assert b.evaluate("window.notReloaded === true")
        assert subjects(b).count("After the restart") == 1, subjects(b)
        # The browser's own reconnection said where it was (Last-Event-ID).
        d.wait_log(rf"arne\[{new_pid}\]: events: \S+ subscribed: replay after \d+", start=mark,
                   what="the stream to resume from the Last-Event-ID")

        # At 360 px wide, in dark mode: nothing wider than the screen.
        b.page("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        b.page("Emulation.setDeviceMetricsOverride", width=360, height=740, deviceScaleFactor=1, mobile=True)
        b.wait("document.documentElement.clientWidth === 360")
        assert b.evaluate("document.documentElement.scrollWidth") <= 360, b.evaluate("document.documentElement.scrollWidth")
        assert b.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(246, 247, 249)"  # the light one
        shot(b, "inbox-360-dark")

        # By keyboard: from the skip link, Tab past Inbox to Sent, its focus
        # visible, and Enter opens it.
        b.evaluate("document.querySelector('.skip').focus()")
        for _ in range(2):
            b.key("Tab")
        focused = b.evaluate("document.activeElement.getAttribute('href') || document.activeElement.id")
        assert focused == "#/sent", focused
        assert b.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
        b.key("Enter")
        b.wait("location.hash === '#/sent' && document.querySelector('#list-title')?.textContent === 'Sent'")
        b.page("Emulation.clearDeviceMetricsOverride")
        b.page("Emulation.setEmulatedMedia", features=[])

        # Sign out: the old cookie is refused afterwards.
        cookie = next(c for c in b.cookies() if c["name"] == "posta_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"], cookie
        old = {"Cookie": f"posta_session={cookie['value']}"}
        assert d.request(arne_host, "GET", "/api/messages", old).status == 200
        b.click("#sign-out")
        b.wait("document.querySelector('#signin-title')", what="the sign-in screen")
        assert d.request(arne_host, "GET", "/api/messages", old).status == 401
        assert b.errors() == [], b.errors()


@test
def a_pasted_token_signs_in_and_an_ended_session_or_a_gone_daemon_is_shown():
    port = free_port()
    arne = {"slug": "arne", "url": f"http://127.0.0.1:{port}", "name": "Arne"}
    host = f"127.0.0.1:{port}"
    with Daemon([arne], args=["--listen", f"127.0.0.1:{port}"]) as d, Browser() as b:
        token = d.token("arne")
        b.navigate(arne["url"] + "/")
        b.wait("document.querySelector('#signin-title')")
        b.type_into("#token", "posta_not-a-token")
        b.click("button[type=submit]")
        b.wait("!document.querySelector('#token-error').hidden", what="the wrong token's error")
        b.evaluate("document.querySelector('#token').value = ''")
        b.type_into("#token", token)
        b.click("button[type=submit]")
        b.wait("document.querySelector('.empty')?.textContent.startsWith('No messages yet')", what="the empty inbox")
        shot(b, "inbox-empty")

        # The owner revokes the session elsewhere: the next step returns to sign-in.
        bearer = {"Authorization": f"Bearer {token}"}
        sessions = d.request(host, "GET", "/api/sessions", bearer).json()["sessions"]
        assert len(sessions) == 1, sessions
        assert d.request(host, "DELETE", f"/api/sessions/{sessions[0]['id']}", bearer).status == 204
        b.click('[data-nav="sent"]')
        b.wait("document.querySelector('[data-slot=reason]')?.textContent.includes('session has ended')",
               what="sign-in, saying the session ended")

        # Signed in again, the daemon goes away: the page says it cannot reach it.
        b.type_into("#token", token)
        b.click("button[type=submit]")
        b.wait("document.querySelector('#list-title')?.textContent === 'Sent'", what="the screen it was going to")
        d.stop()
        b.wait("!document.querySelector('#banner').hidden", timeout=15, what="the unreachable banner")
        assert "server" in b.evaluate("document.querySelector('#banner').textContent")


@test
def the_page_is_small_cached_and_locked_down():
    with Daemon([{"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}]) as d:
        page = d.request("arne.local", "GET", "/")
        assert page.status == 200 and page.headers["content-type"].startswith("text/html"), page
        csp = page.headers["content-security-policy"]
        for directive in ("default-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"):
            assert directive in csp, csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        again = d.request("arne.local", "GET", "/", {"If-None-Match": page.headers["etag"]})
        assert again.status == 304 and again.body == b"" and "content-length" not in again.headers, again

        html = page.body.decode()
        import re
        assets = re.findall(r'(?:src|href)="(/_app/[0-9a-f]{16}/[a-z.]+)"', html)
        assert len(assets) == 3, assets  # icon, style sheet, script
        total = len(page.body)
        for path in assets + [assets[-1].rsplit("/", 1)[0] + "/api.js"]:
            asset = d.request("arne.local", "GET", path)
            assert asset.status == 200, (path, asset)
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.headers["x-content-type-options"] == "nosniff"
            total += len(asset.body)
        assert total <= 100_000, f"the first view transfers {total} bytes"
        print(f"  first view: {total} bytes in {len(assets) + 2} files")
        assert d.request("arne.local", "GET", "/_app/0000000000000000/app.js").status == 404
        assert d.request("arne.local", "GET", assets[-1].rsplit("/", 1)[0] + "/nothing.js").status == 404


if __name__ == "__main__":
    main()
