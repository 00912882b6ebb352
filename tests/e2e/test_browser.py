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
