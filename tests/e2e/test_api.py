"""The owner API: tokens from the real `token` command, /api/messages and
/api/deliveries of two identities served by one daemon, and inbound
messages (from a test sender, peer.py) read, marked, deleted and
redelivered through it."""
import json
import os
import subprocess

from peer import Peer, new_id
from posta import BINARY, Daemon, test, main

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
ARNE_HOST = "arne.local:8080"
MARCUS_HOST = "marcus.local:8080"


def api(d, token, method, path, body=None, host=ARNE_HOST, content_type="application/json", headers=None):
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if content_type:
            all_headers["Content-Type"] = content_type
    return d.request(host, method=method, path=path, headers=all_headers, body=data)


def send(d, token, to, subject="hi", body="hello"):
    r = api(d, token, "POST", "/api/messages", {"to": to, "subject": subject, "body": body})
    assert r.status == 202, r
    return r.json()


@test
def token_command_prints_one_token_and_stores_only_its_hash():
    with Daemon([ARNE, MARCUS]) as d:
        token = d.token("arne")
        assert token.startswith("posta_") and len(token) == 49, token
        assert d.token("arne") != token
        with open(os.path.join(d.state_dir, "arne", "inbox.db"), "rb") as f:
            db = f.read()
        for name in ("inbox.db-wal",):
            path = os.path.join(d.state_dir, "arne", name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    db += f.read()
        assert token.encode() not in db and token[6:].encode() not in db
        assert api(d, token, "GET", "/api/messages").status == 200


@test
def token_command_names_the_known_slugs_for_an_unknown_one():
    with Daemon([ARNE, MARCUS], autostart=False) as d:
        r = subprocess.run([BINARY, "token", "nobody", "--manifest", d.manifest, "--config", d.config_path],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r
        assert r.stdout == "", r
        assert "nobody" in r.stderr and "arne" in r.stderr and "marcus" in r.stderr, r.stderr


@test
def token_works_before_the_first_start_and_never_writes_keys():
    with Daemon([ARNE], autostart=False) as d:
        token = d.token("arne")
        assert not os.path.exists(os.path.join(d.state_dir, "arne", "keys.json"))
        assert os.stat(os.path.join(d.state_dir, "arne")).st_mode & 0o777 == 0o700
        d.start()
        assert api(d, token, "GET", "/api/messages").status == 200


@test
def missing_or_wrong_token_is_401_with_a_bearer_challenge():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        for auth in (None, "Bearer posta_wrong", "Basic YXJuZTpwdw==", "Bearer", token):
            headers = {"Authorization": auth} if auth else {}
            r = d.request(ARNE_HOST, path="/api/messages", headers=headers)
            assert r.status == 401, (auth, r)
            assert r.headers["www-authenticate"].startswith("Bearer"), r
            assert r.json()["error"] == "unauthorized", r
        for path in ("/api/deliveries", "/api/messages/AAAAAAAAAAAAAAAAAAAAAA"):
            r = d.request(ARNE_HOST, path=path)
            assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), (path, r)
        r = d.request(ARNE_HOST, method="POST", path="/api/messages", body=b"{}",
                      headers={"Content-Type": "application/json"})
        assert r.status == 401, r


@test
def a_token_is_valid_for_its_own_identity_only():
    with Daemon([ARNE, MARCUS]) as d:
        arne_token = d.token("arne")
        marcus_token = d.token("marcus")
        assert api(d, arne_token, "GET", "/api/messages").status == 200
        assert api(d, marcus_token, "GET", "/api/messages", host=MARCUS_HOST).status == 200
        r = api(d, arne_token, "GET", "/api/messages", host=MARCUS_HOST)
        assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), r
        r = api(d, marcus_token, "POST", "/api/messages", {"to": ARNE["url"], "body": "x"})
        assert r.status == 401, r


@test
def a_sent_message_is_queued_and_listed_in_the_sent_box():
    with Daemon([ARNE, MARCUS]) as d:
        token = d.token("arne")
        r = api(d, token, "POST", "/api/messages",
                {"to": ["http://MARCUS.local:8080/", "https://example.org", "http://marcus.local:8080"],
                 "subject": "Plans", "body": "Lunch?", "content_type": "text/markdown; charset=utf-8"})
        assert r.status == 202, r
        sent = r.json()
        assert len(sent["id"]) == 22, sent
        assert sent["deliveries"] == [{"to": "http://marcus.local:8080", "status": "queued"},
                                      {"to": "https://example.org", "status": "queued"}], sent

        listed = api(d, token, "GET", "/api/messages?box=sent")
        assert listed.status == 200, listed
        page = listed.json()
        assert page["next"] is None and len(page["messages"]) == 1, page
        message = page["messages"][0]
        assert message["id"] == sent["id"] and message["box"] == "sent", message
        assert message["from"] == ARNE["url"], message
        assert message["to"] == ["http://marcus.local:8080", "https://example.org"], message
        assert message["subject"] == "Plans" and message["body"] == "Lunch?", message
        assert message["content_type"] == "text/markdown; charset=utf-8", message
        assert message["received_at"] is None and message["sent_at"].endswith("Z"), message
        assert list(message) == ["id", "box", "from", "to", "subject", "content_type", "body",
                                 "sent_at", "received_at", "read"], message
        assert api(d, token, "GET", "/api/messages").json() == {"messages": [], "next": None}

        got = api(d, token, "GET", f"/api/messages/{sent['id']}")
        assert got.status == 200 and got.json() == message, got

        deliveries = api(d, token, "GET", "/api/deliveries?state=queued")
        assert deliveries.status == 200, deliveries
        rows = deliveries.json()["deliveries"]
        assert [row["to"] for row in rows] == ["http://marcus.local:8080", "https://example.org"], rows
        for row in rows:
            assert row["message_id"] == sent["id"] and row["state"] == "queued", row
            # The outbox may have tried already: neither recipient is reachable,
            # so each stays queued for a retry at least 30 s (the default) away.
            assert row["attempts"] in (0, 1) and row["next_attempt_at"].endswith("Z"), row
            assert row["last_status"] is None, row
        assert len(api(d, token, "GET", "/api/deliveries").json()["deliveries"]) == 2
        assert api(d, token, "GET", "/api/deliveries?state=failed").json() == {"deliveries": []}
        r = api(d, token, "GET", "/api/deliveries?state=lost")
        assert r.status == 400 and r.json()["error"] == "invalid_parameter", r

        # Marcus's own API knows nothing of Arne's outbox.
        marcus = d.token("marcus")
        assert api(d, marcus, "GET", "/api/deliveries", host=MARCUS_HOST).json() == {"deliveries": []}


@test
def bad_bodies_are_415_or_400():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        r = api(d, token, "POST", "/api/messages", b'{"to": "http://b.test", "body": "x"}', content_type="text/plain")
        assert r.status == 415 and r.json()["error"] == "unsupported_media_type", r
        r = api(d, token, "POST", "/api/messages", b'{"to": "http://b.test", "body": "x"}', content_type=None)
        assert r.status == 415, r
        cases = [
            (b'{"to": ', "malformed_json"),
            (b'[1, 2]', "not_an_object"),
            (b'{"body": "x"}', "missing_field"),
            (b'{"to": [], "body": "x"}', "missing_field"),
            (b'{"to": "http://b.test"}', "missing_field"),
            (b'{"to": 7, "body": "x"}', "wrong_type"),
            (b'{"to": "ftp://b.test", "body": "x"}', "invalid_url"),
            (b'{"to": "http://b.test/inbox", "body": "x"}', "invalid_url"),
            (b'{"to": "http://b.test", "body": 1}', "wrong_type"),
            (b'{"to": "http://b.test", "body": "x", "content_type": "nonsense"}', "invalid_content_type"),
            (b'{"to": "http://b.test", "body": "x", "subjet": "typo"}', "unknown_field"),
            (b'{"to": "http://b.test", "body": "x", "body": "y"}', "duplicate_field"),
            (json.dumps({"to": [f"http://h{i}.test" for i in range(101)], "body": "x"}).encode(),
             "too_many_recipients"),
        ]
        for body, code in cases:
            r = api(d, token, "POST", "/api/messages", body, content_type="application/json; charset=utf-8")
            assert r.status == 400, (body, r)
            assert r.json()["error"] == code, (body, r)
        assert api(d, token, "GET", "/api/deliveries").json() == {"deliveries": []}


@test
def an_oversized_body_is_413():
    with Daemon([ARNE], config={"max_body_bytes": 4096}) as d:
        token = d.token("arne")
        r = api(d, token, "POST", "/api/messages", {"to": "http://b.test", "body": "x" * 8000})
        assert r.status == 413, r
        # Fits the API's limit, but its delivery, with the envelope's other
        # fields, would not fit the receiver's.
        request = {"to": "http://b.test", "body": "x" * 3990}
        assert len(json.dumps(request)) < 4096
        r = api(d, token, "POST", "/api/messages", request)
        assert r.status == 413 and r.json()["error"] == "body_too_large", r
        assert api(d, token, "GET", "/api/deliveries").json() == {"deliveries": []}


@test
def patch_read_then_delete_makes_the_id_404():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        sent = send(d, token, "http://b.test")
        path = f"/api/messages/{sent['id']}"
        r = api(d, token, "PATCH", path, {"read": False})
        assert r.status == 200 and r.json()["read"] is False and r.json()["id"] == sent["id"], r
        assert api(d, token, "GET", path).json()["read"] is False
        r = api(d, token, "PATCH", path, {"read": True})
        assert r.status == 200 and r.json()["read"] is True, r
        for body, code in ((b'{"read": "yes"}', "wrong_type"), (b'{}', "missing_field"),
                           (b'{"read": true, "box": "x"}', "unknown_field")):
            r = api(d, token, "PATCH", path, body)
            assert r.status == 400 and r.json()["error"] == code, (body, r)
        assert api(d, token, "PATCH", path, b'{"read": true}', content_type="text/plain").status == 415

        r = api(d, token, "DELETE", path)
        assert r.status == 204 and r.body == b"", r
        for method, body in (("GET", None), ("PATCH", {"read": True}), ("DELETE", None)):
            r = api(d, token, method, path, body)
            assert r.status == 404 and r.json()["error"] == "not_found", (method, r)
        assert api(d, token, "GET", "/api/messages?box=sent").json()["messages"] == []
        # Its queued delivery went with it: the content to send is gone.
        rows = api(d, token, "GET", "/api/deliveries").json()["deliveries"]
        assert len(rows) == 1 and rows[0]["state"] == "failed" and rows[0]["next_attempt_at"] is None, rows
        assert "deleted" in rows[0]["last_error"], rows
        assert api(d, token, "GET", "/api/messages/nonexistent").status == 404


@test
def messages_page_newest_first_across_three_pages():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        ids = [send(d, token, "http://b.test", subject=f"m{i}")["id"] for i in range(7)]
        seen = []
        cursor = None
        pages = 0
        while True:
            path = "/api/messages?box=sent&limit=3" + (f"&before={cursor}" if cursor else "")
            r = api(d, token, "GET", path)
            assert r.status == 200, r
            page = r.json()
            pages += 1
            seen += [m["id"] for m in page["messages"]]
            cursor = page["next"]
            if cursor is None:
                break
            assert len(page["messages"]) == 3, page
        assert pages == 3, pages
        assert seen == list(reversed(ids)), (seen, ids)
        for query, in (("limit=0",), ("limit=501",), ("limit=x",), ("limit=",), ("box=trash",),
                       ("before=notacursor",), ("box=sent&box=inbox",)):
            r = api(d, token, "GET", "/api/messages?" + query)
            assert r.status == 400 and r.json()["error"] == "invalid_parameter", (query, r)
        assert len(api(d, token, "GET", "/api/messages?box=sent&limit=500").json()["messages"]) == 7


@test
def wrong_methods_are_405_with_allow():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        r = api(d, token, "PUT", "/api/messages", {"to": "http://b.test", "body": "x"})
        assert r.status == 405 and "POST" in r.headers["allow"] and "GET" in r.headers["allow"], r
        r = api(d, token, "POST", "/api/messages/AAAAAAAAAAAAAAAAAAAAAA", {"read": True})
        assert r.status == 405 and "PATCH" in r.headers["allow"] and "DELETE" in r.headers["allow"], r
        r = api(d, token, "DELETE", "/api/deliveries")
        assert r.status == 405, r


@test
def an_inbound_message_is_read_marked_and_deleted_and_its_redelivery_stays_a_duplicate():
    with Daemon([ARNE, MARCUS]) as d, Peer() as peer:
        token = d.token("arne")
        env, delivered = peer.deliver(d, ARNE["url"], subject="Grüße", body="line one\nline two ✓")
        assert delivered.status == 202, delivered
        page = api(d, token, "GET", "/api/messages").json()
        assert page["next"] is None and len(page["messages"]) == 1, page
        message = page["messages"][0]
        assert message == {
            "id": env["id"], "box": "inbox", "from": peer.url, "to": [ARNE["url"]],
            "subject": "Grüße", "content_type": "text/plain", "body": "line one\nline two ✓",
            "sent_at": env["sent_at"], "received_at": message["received_at"], "read": False}, message
        assert message["received_at"].endswith("Z"), message
        # Marcus's API does not see Arne's inbox.
        marcus = d.token("marcus")
        assert api(d, marcus, "GET", "/api/messages", host=MARCUS_HOST).json()["messages"] == []
        assert api(d, marcus, "GET", f"/api/messages/{env['id']}", host=MARCUS_HOST).status == 404

        path = f"/api/messages/{env['id']}"
        assert api(d, token, "GET", path).json() == message
        assert api(d, token, "GET", path + "?box=sent").status == 404
        assert api(d, token, "GET", path + "?from=" + peer.url.replace(":", "%3A")).status == 200
        r = api(d, token, "PATCH", path, {"read": True})
        assert r.status == 200 and r.json() == dict(message, read=True), r

        assert api(d, token, "DELETE", path).status == 204
        assert api(d, token, "GET", path).status == 404
        again = peer.send(d, ARNE["url"], env)
        assert again.status == 200 and again.json() == {"status": "duplicate"}, again
        assert api(d, token, "GET", path).status == 404
        assert api(d, token, "GET", "/api/messages").json() == {"messages": [], "next": None}

        # Another message from the same sender is not held back by the tombstone.
        _, other = peer.deliver(d, ARNE["url"], id=new_id())
        assert other.status == 202, other
        assert len(api(d, token, "GET", "/api/messages").json()["messages"]) == 1


@test
def tokens_issued_while_the_daemon_runs_work_at_once():
    with Daemon([ARNE]) as d:
        first = d.token("arne")
        send(d, first, "http://b.test")
        second = d.token("arne")
        assert api(d, second, "GET", "/api/messages?box=sent").json()["messages"][0]["to"] == ["http://b.test"]
        assert d.stop() == 0


if __name__ == "__main__":
    main()
