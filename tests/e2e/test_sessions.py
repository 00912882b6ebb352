"""Browser sign-in against the real daemon: a link from the real `login`
command that signs in once, the session cookie on /api/messages and
/api/events, the Origin check on writes made with the cookie (CSRF) while
Bearer needs none, sign-out and revocation, the Secure attribute over TLS and
not over plain HTTP, and CORS on the identity document but not on the API."""
import http.client
import json
import os
import re
import socket
import subprocess
import time
from datetime import datetime

from peer import Peer
from posta import BINARY, Daemon, test, main, wait_for
from tls_setup import client_context, start, tls_daemon

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
HOST = "arne.local:8080"
ORIGIN = "http://arne.local:8080"
CODE = re.compile(r"[A-Za-z0-9_-]{43}")
THIRTY_DAYS = 30 * 24 * 3600


def login(d, slug="arne"):
    """Runs the real `login` command; returns the one line it printed."""
    r = subprocess.run([BINARY, "login", slug, "--manifest", d.manifest, "--config", d.config_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"posta-server login {slug} failed ({r.returncode}): {r.stderr}"
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"login printed {r.stdout!r}"
    return lines[0]


def code_of(link, url=ARNE["url"]):
    prefix = url + "/#code="
    assert link.startswith(prefix), link
    code = link[len(prefix):]
    assert CODE.fullmatch(code), link
    return code


def call(d, method, path, cookie=None, origin=None, token=None, body=None, host=HOST, headers=None):
    all_headers = dict(headers or {})
    if cookie is not None:
        all_headers["Cookie"] = f"posta_session={cookie}"
    if origin is not None:
        all_headers["Origin"] = origin
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    return d.request(host, method=method, path=path, headers=all_headers, body=data)


def sign_in(d, body, origin=ORIGIN, **kwargs):
    return call(d, "POST", "/api/session", origin=origin, body=body, **kwargs)


def cookie(response):
    """The session secret and the attributes of the answer's Set-Cookie."""
    header = response.headers.get("set-cookie")
    assert header, response
    first, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    assert name == "posta_session", header
    return value, attributes


def rfc3339(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def error_of(response):
    assert response.headers.get("content-type") == "application/json", response
    return response.json()["error"]


def db_bytes(d, slug="arne"):
    data = b""
    for name in ("inbox.db", "inbox.db-wal"):
        path = os.path.join(d.state_dir, slug, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data += f.read()
    return data


class EventStream:
    """GET /api/events on a raw socket, with the session cookie."""

    def __init__(self, d, secret, host=HOST):
        self.sock = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        self.sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nCookie: posta_session={secret}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.data = b""
        wait_for(lambda: self._read() and b"\r\n\r\n" in self.data, what="the stream's head")
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        self.head = head.decode()
        self.status = int(self.head.split(" ", 2)[1])

    def _read(self):
        chunk = self.sock.recv(65536)
        assert chunk, f"the stream closed after {self.data!r}"
        self.data += chunk
        return True

    def wait_for_text(self, needle):
        wait_for(lambda: needle.encode() in self.data or (self._read() and needle.encode() in self.data),
                 what=f"{needle!r} on the stream")

    def close(self):
        self.sock.close()


@test
def a_login_link_signs_in_once_and_only_hashes_are_kept():
    with Daemon([ARNE]) as d:
        link = login(d)
        code = code_of(link)
        assert code_of(login(d)) != code  # every run mints a new code

        before = time.time()
        r = sign_in(d, {"code": code})
        assert r.status == 201, r
        session = r.json()["session"]
        assert sorted(session) == ["created_at", "expires_at", "id", "last_seen_at"], session
        assert abs(rfc3339(session["created_at"]) - before) < 60, session
        assert rfc3339(session["expires_at"]) - rfc3339(session["created_at"]) == THIRTY_DAYS, session
        assert r.headers.get("cache-control") == "no-store", r
        secret, attributes = cookie(r)
        assert CODE.fullmatch(secret), secret
        assert attributes == ["HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={THIRTY_DAYS}"], attributes
        assert "Secure" not in attributes  # plain HTTP: the cookie must still work there

        again = sign_in(d, {"code": code})
        assert again.status == 401 and error_of(again) == "invalid_code", again
        assert "set-cookie" not in again.headers, again
        wrong = sign_in(d, {"code": "A" * 43})
        assert wrong.status == 401 and error_of(wrong) == "invalid_code", wrong

        assert call(d, "GET", "/api/messages", cookie=secret).status == 200
        db = db_bytes(d)
        assert code.encode() not in db and secret.encode() not in db
        # The code is in the link's fragment: no request line carries it, so
        # no log does either.
        assert not any(code in line or secret in line for line in d.log()), d.log()
        assert d.find_log(rf"session {re.escape(session['id'])} started by a sign-in code")


@test
def login_names_the_known_slugs_for_an_unknown_one():
    with Daemon([ARNE], autostart=False) as d:
        r = subprocess.run([BINARY, "login", "nobody", "--manifest", d.manifest, "--config", d.config_path],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and r.stdout == "", r
        assert "posta-server login" in r.stderr and "nobody" in r.stderr and "arne" in r.stderr, r.stderr


@test
def the_cookie_reads_messages_and_the_event_stream():
    with Daemon([ARNE]) as d, Peer() as peer:
        env, reply = peer.deliver(d, ARNE["url"], subject="before")
        assert reply.status == 202, reply
        secret, _ = cookie(sign_in(d, {"code": code_of(login(d))}))

        r = call(d, "GET", "/api/messages", cookie=secret)  # a GET needs no Origin
        assert r.status == 200, r
        assert [m["id"] for m in r.json()["messages"]] == [env["id"]], r
        assert "access-control-allow-origin" not in r.headers, r
        r = call(d, "GET", f"/api/messages/{env['id']}", cookie=secret, origin="http://elsewhere.local")
        assert r.status == 200, r

        stream = EventStream(d, secret)
        try:
            assert stream.status == 200, stream.head
            assert "text/event-stream" in stream.head, stream.head
            wait_for(lambda: d.find_log(r"events: .* subscribed"), what="the subscription")
            live, reply = peer.deliver(d, ARNE["url"], subject="live")
            assert reply.status == 202, reply
            stream.wait_for_text(live["id"])
        finally:
            stream.close()

        for bad in ("", "forged", secret + "x"):
            r = call(d, "GET", "/api/events", cookie=bad)
            assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), r


@test
def writes_with_the_cookie_need_the_identity_origin_and_bearer_needs_none():
    with Daemon([ARNE]) as d, Peer() as peer:
        env, reply = peer.deliver(d, ARNE["url"])
        assert reply.status == 202, reply
        token = d.token("arne")
        secret, _ = cookie(sign_in(d, {"code": code_of(login(d))}))
        message = {"to": "http://marcus.local:8080", "subject": "csrf?", "body": "b"}

        for origin in (None, "http://evil.local:8080", "null", "http://arne.local:8081", "https://arne.local:8080",
                       "http://arne.local:8080/"):
            r = call(d, "POST", "/api/messages", cookie=secret, origin=origin, body=message)
            assert r.status == 403 and error_of(r) == "cross_origin", (origin, r)
            r = call(d, "PATCH", f"/api/messages/{env['id']}", cookie=secret, origin=origin, body={"read": True})
            assert r.status == 403, (origin, r)
            r = call(d, "DELETE", f"/api/messages/{env['id']}", cookie=secret, origin=origin)
            assert r.status == 403, (origin, r)
        # Nothing of it happened.
        r = call(d, "GET", "/api/messages?box=sent", token=token)
        assert r.json()["messages"] == [], r
        assert call(d, "GET", f"/api/messages/{env['id']}", token=token).json()["read"] is False

        # The identity's own pages; the origin compares without case.
        r = call(d, "PATCH", f"/api/messages/{env['id']}", cookie=secret, origin=ORIGIN, body={"read": True})
        assert r.status == 200 and r.json()["read"] is True, r
        r = call(d, "POST", "/api/messages", cookie=secret, origin="HTTP://Arne.Local:8080", body=message)
        assert r.status == 202, r

        # Tools: Bearer, no Origin, and a foreign one does not matter.
        assert call(d, "POST", "/api/messages", token=token, body=message).status == 202
        assert call(d, "POST", "/api/messages", token=token, body=message, origin="http://evil.local").status == 202

        # A sign-in from another site's page is refused; one from a tool is taken.
        r = sign_in(d, {"token": token}, origin="http://evil.local:8080")
        assert r.status == 403 and error_of(r) == "cross_origin" and "set-cookie" not in r.headers, r
        r = sign_in(d, {"token": token}, origin=None)
        assert r.status == 201, r
        d.wait_log(r"session \S+ started by an API token", what="the sign-in log line")


@test
def sign_out_and_revocation_end_sessions():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        first = sign_in(d, {"code": code_of(login(d))})
        mine, _ = cookie(first)
        mine_id = first.json()["session"]["id"]
        second = sign_in(d, {"token": token})
        other, _ = cookie(second)
        other_id = second.json()["session"]["id"]

        r = call(d, "GET", "/api/sessions", cookie=mine)
        assert r.status == 200, r
        listed = r.json()["sessions"]
        assert [(s["id"], s["current"]) for s in listed] == [(mine_id, True), (other_id, False)], listed
        assert sorted(listed[0]) == ["created_at", "current", "expires_at", "id", "last_seen_at"], listed
        assert listed[0]["last_seen_at"] is not None and listed[1]["last_seen_at"] is None, listed
        r = call(d, "GET", "/api/sessions", token=token)
        assert [s["current"] for s in r.json()["sessions"]] == [False, False], r

        # Sign-out is a write: it needs the Origin too.
        assert call(d, "DELETE", "/api/session", cookie=mine).status == 403
        r = call(d, "DELETE", "/api/session", cookie=mine, origin=ORIGIN)
        assert r.status == 204, r
        value, attributes = cookie(r)
        assert value == "" and "Max-Age=0" in attributes and "HttpOnly" in attributes, r
        for path in ("/api/messages", "/api/events", "/api/sessions"):
            r = call(d, "GET", path, cookie=mine)
            assert r.status == 401, (path, r)
            assert cookie(r)[0] == "", r  # the browser is told to drop it
        assert call(d, "DELETE", "/api/session", token=token).status == 404  # a token has no session

        assert call(d, "GET", "/api/messages", cookie=other).status == 200
        assert call(d, "DELETE", f"/api/sessions/{other_id}", token=token).status == 204
        assert call(d, "GET", "/api/messages", cookie=other).status == 401
        r = call(d, "DELETE", f"/api/sessions/{other_id}", token=token)
        assert r.status == 404 and error_of(r) == "not_found", r
        assert call(d, "GET", "/api/sessions", token=token).json()["sessions"] == []


@test
def a_sign_in_body_that_is_not_one_code_or_token_is_400():
    with Daemon([ARNE]) as d:
        for body, expected in ((b"{", "malformed_json"), (b"[]", "not_an_object"), (b"{}", "missing_field"),
                               (b'{"code": 5}', "wrong_type"), (b'{"code": "a", "token": "b"}', "conflicting_fields"),
                               (b'{"code": "a", "code": "b"}', "duplicate_field"),
                               (b'{"password": "x"}', "unknown_field")):
            r = sign_in(d, body)
            assert r.status == 400 and error_of(r) == expected, (body, r)
        r = call(d, "POST", "/api/session", body=None, headers={"Content-Type": "text/plain"})
        assert r.status == 415, r
        r = sign_in(d, {"token": "posta_wrong"})
        assert r.status == 401 and error_of(r) == "invalid_token", r
        assert r.headers["www-authenticate"].startswith("Bearer"), r


def tls_request(d, pki, host, method, path, headers=None, body=None):
    raw = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    conn = http.client.HTTPConnection(host, timeout=10)
    conn.sock = client_context(pki).wrap_socket(raw, server_hostname=host)
    try:
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@test
def the_cookie_is_secure_over_tls_and_the_default_port_may_be_written():
    secure_arne = {"slug": "arne", "url": "https://arne.local", "name": "Arne"}
    d, pki, _ = tls_daemon([secure_arne], ["arne"])
    with d:
        start(d)
        link = login(d)
        code = code_of(link, "https://arne.local")
        status, headers, body = tls_request(d, pki, "arne.local", "POST", "/api/session",
                                            {"Origin": "https://arne.local"}, {"code": code})
        assert status == 201, (status, body)
        parts = [p.strip() for p in headers["set-cookie"].split(";")]
        assert parts[1:] == ["HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={THIRTY_DAYS}", "Secure"], parts
        secret = parts[0].partition("=")[2]
        jar = {"Cookie": f"posta_session={secret}"}

        assert tls_request(d, pki, "arne.local", "GET", "/api/messages", jar)[0] == 200
        message = {"to": "http://marcus.local:8080", "body": "b"}
        for origin in ("https://arne.local", "https://arne.local:443"):
            status, _, body = tls_request(d, pki, "arne.local", "POST", "/api/messages", {**jar, "Origin": origin},
                                          message)
            assert status == 202, (origin, body)
        for origin in ("http://arne.local", "https://arne.local:8443"):
            status, _, body = tls_request(d, pki, "arne.local", "POST", "/api/messages", {**jar, "Origin": origin},
                                          message)
            assert status == 403, (origin, body)
        status, headers, _ = tls_request(d, pki, "arne.local", "DELETE", "/api/session",
                                         {**jar, "Origin": "https://arne.local"})
        assert status == 204 and headers["set-cookie"].endswith("Max-Age=0; Secure"), headers


@test
def the_identity_document_allows_every_origin_and_the_api_none():
    with Daemon([ARNE]) as d:
        r = call(d, "GET", "/.well-known/posta", origin="http://elsewhere.local")
        assert r.status == 200 and r.headers.get("access-control-allow-origin") == "*", r
        assert "access-control-allow-credentials" not in r.headers, r
        r = call(d, "OPTIONS", "/.well-known/posta", origin="http://elsewhere.local",
                 headers={"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "cache-control"})
        assert r.status == 204 and r.body == b"", r
        assert r.headers.get("access-control-allow-origin") == "*", r
        assert r.headers.get("access-control-allow-methods") == "GET, OPTIONS", r
        assert r.headers.get("access-control-allow-headers") == "*", r
        assert int(r.headers.get("access-control-max-age", "0")) > 0, r

        token = d.token("arne")
        for method in ("OPTIONS", "GET"):
            r = call(d, method, "/api/messages", token=token, origin="http://elsewhere.local",
                     headers={"Access-Control-Request-Method": "POST"})
            assert not any(name.startswith("access-control-") for name in r.headers), r
        assert call(d, "OPTIONS", "/api/messages", origin="http://elsewhere.local").status == 405


if __name__ == "__main__":
    main()
