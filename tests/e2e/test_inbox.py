"""POST /inbox against the real daemon, from a test sender (peer.py) that
signs with its own key and serves its own identity document on loopback:
acceptance and duplicates, every refusal with its status (and nothing
stored), the sender key cache and its refetch, ACL, rate limits, and a 202
that survives kill -9 of the worker."""
import datetime
import os
import re
import signal
import sqlite3
import threading
import time

from peer import Listener, Peer, b64url, new_id, rfc3339
from posta import Daemon, read_until_close, status_of, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
ARNE_URL = ARNE["url"]


def inbox_rows(daemon, slug="arne"):
    """The inbox messages of `slug`, read from its inbox.db (read-only)."""
    path = os.path.join(daemon.state_dir, slug, "inbox.db")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT sender, id, subject, content_type, body, sent_at FROM messages "
                          "WHERE box = 'inbox' ORDER BY seq").fetchall()
    finally:
        db.close()


def refused(reply, status, code):
    assert reply.status == status, reply
    assert reply.json()["error"] == code, reply
    assert reply.json()["message"], reply


def run_parallel(functions):
    """Runs each function in its own thread; returns their results in order."""
    results = [None] * len(functions)
    errors = []

    def run(i, fn):
        try:
            results[i] = fn()
        except Exception as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


@test
def a_delivery_is_202_then_its_redelivery_is_200_duplicate():
    with Daemon([ARNE]) as d, Peer() as peer:
        env, first = peer.deliver(d, ARNE_URL, subject="Grüße", body="line one\nline two ✓")
        assert first.status == 202, first
        assert first.json() == {"status": "accepted"}, first
        assert first.headers["content-type"].startswith("application/json")
        again = peer.send(d, ARNE_URL, env)
        assert again.status == 200 and again.json() == {"status": "duplicate"}, again
        rows = inbox_rows(d)
        assert rows == [(peer.url, env["id"], "Grüße", "text/plain", "line one\nline two ✓", env["sent_at"])], rows
        d.wait_log(rf"inbox: {env['id']} from {peer.url} .*: accepted")
        d.wait_log(rf"inbox: {env['id']} from {peer.url} .*: duplicate")


@test
def the_same_id_to_two_identities_is_two_messages():
    with Daemon([ARNE, MARCUS]) as d, Peer() as peer:
        shared = new_id()
        _, to_arne = peer.deliver(d, ARNE_URL, id=shared)
        _, to_marcus = peer.deliver(d, MARCUS["url"], id=shared)
        assert to_arne.status == 202 and to_marcus.status == 202, (to_arne, to_marcus)
        assert [r[1] for r in inbox_rows(d, "arne")] == [shared]
        assert [r[1] for r in inbox_rows(d, "marcus")] == [shared]


@test
def every_refusal_has_its_status_and_stores_nothing():
    with Daemon([ARNE, MARCUS], config={"max_body_bytes": 4096}) as d, Peer() as peer, Peer() as stranger:
        # Signed by another key than the one in the sender's document.
        env = peer.envelope(ARNE_URL)
        body = peer.encode(env)
        r = peer.send(d, ARNE_URL, body, signature=peer.signature_header(body, keys=stranger.keys))
        refused(r, 401, "bad_signature")
        assert r.headers["www-authenticate"].startswith("Posta-Signature"), r

        # A body changed after signing: one byte of the text.
        env = peer.envelope(ARNE_URL, body="pay 10 EUR")
        body = peer.encode(env)
        signature = peer.signature_header(body)
        r = peer.send(d, ARNE_URL, body.replace(b"10 EUR", b"99 EUR"), signature=signature)
        refused(r, 401, "bad_signature")
        # Re-encoding the same JSON differently is a different body too.
        r = peer.send(d, ARNE_URL, body.replace(b'","', b'", "', 1), signature=signature)
        refused(r, 401, "bad_signature")

        # Addressed to marcus, sent to arne's inbox.
        refused(peer.send(d, ARNE_URL, peer.envelope(MARCUS["url"])), 421, "wrong_recipient")

        refused(peer.send(d, ARNE_URL, b'{"posta": 1, "id": '), 400, "malformed_json")
        refused(peer.send(d, ARNE_URL, b"[1, 2]"), 400, "not_an_object")
        env = peer.envelope(ARNE_URL)
        del env["sent_at"]
        refused(peer.send(d, ARNE_URL, env), 400, "missing_field")
        refused(peer.send(d, ARNE_URL, peer.envelope(ARNE_URL, posta=2)), 400, "unsupported_version")
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
        refused(peer.send(d, ARNE_URL, peer.envelope(ARNE_URL, sent_at=rfc3339(future))), 400, "sent_in_future")

        # Over max_body_bytes: 413 from Content-Length, before any check.
        big = peer.envelope(ARNE_URL, body="x" * 5000)
        refused(peer.send(d, ARNE_URL, big), 413, "body_too_large")
        # And a chunked body that passes the bound on the way.
        payload = peer.encode(big)
        chunked = (b"POST /inbox HTTP/1.1\r\nHost: arne.local:8080\r\nTransfer-Encoding: chunked\r\n"
                   b"Posta-Signature: " + peer.signature_header(payload).encode() + b"\r\n\r\n")
        for i in range(0, len(payload), 1000):
            piece = payload[i:i + 1000]
            chunked += b"%x\r\n" % len(piece) + piece + b"\r\n"
        chunked += b"0\r\n\r\n"
        assert status_of(d.raw(chunked)) == 413

        # No Posta-Signature at all; and one that is not ed25519=<86 chars>.
        r = peer.send(d, ARNE_URL, peer.envelope(ARNE_URL), signature=None)
        refused(r, 401, "missing_signature")
        assert r.headers["www-authenticate"].startswith("Posta-Signature"), r
        refused(peer.send(d, ARNE_URL, peer.envelope(ARNE_URL), signature="ed25519=abc"), 400,
                "invalid_signature_length")
        refused(peer.send(d, ARNE_URL, peer.envelope(ARNE_URL), signature="rsa=" + "A" * 86), 400,
                "unsupported_signature_algorithm")

        assert inbox_rows(d) == [] and inbox_rows(d, "marcus") == []

        # The same checks pass a good one; a body of exactly max_body_bytes
        # arrives whole, not cut short.
        env = peer.envelope(ARNE_URL, body="")
        env["body"] = "y" * (4096 - len(peer.encode(env)))
        assert len(peer.encode(env)) == 4096
        ok = peer.send(d, ARNE_URL, env)
        assert ok.status == 202, ok
        assert inbox_rows(d)[0][4] == env["body"]


@test
def an_unreachable_sender_is_502_and_stores_nothing():
    with Daemon([ARNE]) as d:
        peer = Peer()
        peer.stop()  # its port is closed: connection refused
        _, r = peer.deliver(d, ARNE_URL)
        refused(r, 502, "sender_unreachable")
        assert inbox_rows(d) == []

        with Peer() as broken:
            broken.status = 503
            refused(broken.deliver(d, ARNE_URL)[1], 502, "sender_unreachable")
            broken.status = 404
            refused(broken.deliver(d, ARNE_URL)[1], 502, "sender_unreachable")
            broken.status = 200
            # A document that claims another identity, one with a bad key, one
            # over 64 KiB: the sender is reachable but its document is not valid.
            doc = broken.document()
            broken.raw_document = Peer.encode(dict(doc, url="http://127.0.0.1:1"))
            refused(broken.deliver(d, ARNE_URL)[1], 502, "invalid_sender_document")
            broken.raw_document = Peer.encode(dict(doc, public_key=b64url(b"short")))
            refused(broken.deliver(d, ARNE_URL)[1], 502, "invalid_sender_document")
            broken.raw_document = Peer.encode(dict(doc, name="n" * 70000))
            refused(broken.deliver(d, ARNE_URL)[1], 502, "invalid_sender_document")
            # Fixed: the sender's retry goes through (failures are not cached).
            broken.raw_document = None
            assert broken.deliver(d, ARNE_URL)[1].status == 202
        assert len(inbox_rows(d)) == 1


# What an answer to a stranger must not contain: how our fetch went.
TRANSPORT_WORDS = ("curl", "connect", "refused", "timed out", "timeout", "policy", "outbound", "loopback",
                   "resolve", "reset", "tls", "ssl", "status", "answered", "(")


def names_no_transport_detail(reply):
    message = reply.json()["message"].lower()
    return not any(word in message for word in TRANSPORT_WORDS), message


@test
def a_stranger_claiming_a_loopback_sender_is_refused_without_a_connection_and_told_nothing():
    # The default policy: loopback is not in outbound_allow.
    with Daemon([ARNE], config={"outbound_allow": []}) as d, Listener() as probe, Peer() as peer:
        start = len(d.log())
        env = peer.envelope(ARNE_URL, **{"from": probe.url})
        r = peer.send(d, ARNE_URL, env)
        refused(r, 502, "sender_unreachable")
        assert names_no_transport_detail(r)[0], r
        assert probe.accept_count() == 0, "the worker connected to the port the stranger named"
        assert inbox_rows(d) == []
        # The operator gets the reason, once, in the directory's line.
        d.wait_log(rf"peer {probe.url}: .*refused by outbound policy: 127\.0\.0\.1 is loopback; see outbound_allow",
                   start=start)
        assert sum("refused by outbound policy" in line for line in d.log()[start:]) == 1, d.log()[start:]


@test
def answers_to_a_stranger_name_no_transport_detail():
    with Daemon([ARNE]) as d:
        with Listener() as silent, Peer() as peer:
            # A port that takes the connection and never answers (timeout),
            # then one that is closed (connection refused).
            env = peer.envelope(ARNE_URL, **{"from": silent.url})
            r = peer.send(d, ARNE_URL, env)
            refused(r, 502, "sender_unreachable")
            assert names_no_transport_detail(r)[0], r
        closed = Peer()
        closed.stop()
        r = closed.deliver(d, ARNE_URL)[1]
        refused(r, 502, "sender_unreachable")
        assert names_no_transport_detail(r)[0], r
        with Peer() as broken:
            broken.status = 404
            r = broken.deliver(d, ARNE_URL)[1]
            refused(r, 502, "sender_unreachable")
            assert names_no_transport_detail(r)[0], r
            broken.status = 200
            broken.raw_document = b"<html>secret internal page</html>"
            r = broken.deliver(d, ARNE_URL)[1]
            refused(r, 502, "invalid_sender_document")
            assert "secret" not in r.json()["message"] and "not JSON" not in r.json()["message"], r


@test
def a_sender_document_whose_inbox_is_not_its_url_plus_inbox_is_invalid():
    with Daemon([ARNE]) as d, Peer() as peer, Listener() as elsewhere:
        peer.raw_document = Peer.encode(dict(peer.document(), inbox=elsewhere.url + "/inbox"))
        r = peer.deliver(d, ARNE_URL)[1]
        refused(r, 502, "invalid_sender_document")
        assert "/inbox" in r.json()["message"], r
        assert inbox_rows(d) == []
        d.wait_log(rf"peer {peer.url}: .*\"inbox\" is \"{elsewhere.url}/inbox\", not its url")
        assert elsewhere.accept_count() == 0


@test
def a_sender_named_by_host_name_is_resolved_by_the_sandboxed_worker():
    with Daemon([ARNE]) as d, Peer(host="localhost") as peer:
        assert peer.url.startswith("http://localhost:")
        assert peer.deliver(d, ARNE_URL)[1].status == 202
        assert [row[0] for row in inbox_rows(d)] == [peer.url]


@test
def a_sender_whose_document_takes_over_5s_is_502():
    with Daemon([ARNE]) as d, Peer() as slow:
        slow.delay = 7
        started = time.monotonic()
        _, r = slow.deliver(d, ARNE_URL)
        elapsed = time.monotonic() - started
        refused(r, 502, "sender_unreachable")
        assert 4.5 < elapsed < 6.5, elapsed
        assert inbox_rows(d) == []


@test
def a_slow_sender_does_not_hold_up_other_requests():
    with Daemon([ARNE]) as d, Peer() as slow, Peer() as quick:
        assert quick.deliver(d, ARNE_URL)[1].status == 202  # its key is now cached
        slow.delay = 2.5
        results = {}
        thread = threading.Thread(target=lambda: results.update(slow=slow.deliver(d, ARNE_URL)[1]))
        thread.start()
        wait_for(lambda: slow.document_gets == 1, what="the daemon to ask for the slow document")
        started = time.monotonic()
        assert d.request("arne.local:8080").status == 200
        assert quick.deliver(d, ARNE_URL)[1].status == 202
        assert time.monotonic() - started < 1.0
        assert "slow" not in results  # still waiting for its key
        thread.join(10)
        assert results["slow"].status == 202, results


@test
def a_graceful_stop_answers_a_delivery_waiting_for_its_senders_key():
    with Daemon([ARNE]) as d, Peer() as slow:
        slow.delay = 1.5
        results = {}
        thread = threading.Thread(target=lambda: results.update(reply=slow.deliver(d, ARNE_URL)))
        thread.start()
        wait_for(lambda: slow.document_gets == 1, what="the daemon to ask for the slow document")
        assert d.stop() == 0
        thread.join(10)
        env, reply = results["reply"]
        assert reply.status == 202, reply
        assert [row[1] for row in inbox_rows(d)] == [env["id"]]
        d.reader.join(5)  # the daemon has exited: read its log to the end
        assert d.find_log(r"arne: worker \d+ exited with status 0") or d.find_log(r"arne\[\d+\]: stopped")


@test
def a_client_that_leaves_while_its_senders_key_is_fetched_harms_nothing():
    with Daemon([ARNE]) as d, Peer() as slow:
        pid = d.worker_pid("arne")
        slow.delay = 1.0
        body = slow.encode(slow.envelope(ARNE_URL))
        with d.connect() as s:
            s.sendall(b"POST /inbox HTTP/1.1\r\nHost: arne.local:8080\r\nContent-Length: %d\r\n"
                      b"Posta-Signature: %s\r\n\r\n" % (len(body), slow.signature_header(body).encode()) + body)
            wait_for(lambda: slow.document_gets == 1, what="the daemon to ask for the slow document")
        # The fetch ends after the client left; whether the session noticed
        # (the answer is dropped) or not (it is written into a closed socket),
        # the worker goes on.
        slow.delay = 0
        wait_for(lambda: d.find_log(r"client gone before its sender's key came") or d.find_log(r"inbox: .* accepted"),
                 what="the fetch to end")
        assert slow.deliver(d, ARNE_URL)[1].status == 202
        assert d.find_log(r"killed by|exited") is None
        assert d.worker_pid("arne") == pid


@test
def concurrent_deliveries_from_a_new_sender_fetch_its_document_once():
    with Daemon([ARNE]) as d, Peer() as peer:
        peer.delay = 0.5
        envelopes = [peer.envelope(ARNE_URL) for _ in range(8)]
        replies = run_parallel([lambda e=e: peer.send(d, ARNE_URL, e) for e in envelopes])
        assert [r.status for r in replies] == [202] * 8, replies
        assert peer.document_gets == 1, peer.document_gets
        # Cached now: more deliveries fetch nothing.
        assert peer.deliver(d, ARNE_URL)[1].status == 202
        assert peer.document_gets == 1
        assert len(inbox_rows(d)) == 9


@test
def the_same_delivery_twice_at_once_is_one_202_and_one_200():
    with Daemon([ARNE]) as d, Peer() as peer:
        assert peer.deliver(d, ARNE_URL)[1].status == 202  # cache the key
        for _ in range(5):
            env = peer.envelope(ARNE_URL)
            replies = run_parallel([lambda: peer.send(d, ARNE_URL, env)] * 2)
            assert sorted(r.status for r in replies) == [200, 202], replies
        assert len(inbox_rows(d)) == 6


@test
def concurrent_deliveries_share_commits():
    with Daemon([ARNE], config={"log_level": "debug"}) as d, Peer() as peer:
        assert peer.deliver(d, ARNE_URL)[1].status == 202  # cache the key
        count = 40
        requests = []
        for _ in range(count):
            body = peer.encode(peer.envelope(ARNE_URL))
            requests.append(b"POST /inbox HTTP/1.1\r\nHost: arne.local:8080\r\nConnection: close\r\n"
                            b"Content-Length: %d\r\nPosta-Signature: %s\r\n\r\n"
                            % (len(body), peer.signature_header(body).encode()) + body)
        # Every request is on the wire before any answer is read.
        sockets = [d.connect() for _ in range(count)]
        for s, data in zip(sockets, requests):
            s.sendall(data)
        statuses = []
        for s in sockets:
            with s:
                statuses.append(status_of(read_until_close(s)))
        assert statuses == [202] * count, statuses
        assert len(inbox_rows(d)) == count + 1
        sizes = [int(m.group(1)) for m in map(re.compile(r"committed (\d+) deliveries").search, d.log()) if m]
        assert sum(sizes) == count + 1, sizes
        assert max(sizes) > 1, sizes


@test
def a_rotated_key_is_refetched_once_per_five_minutes():
    with Daemon([ARNE]) as d, Peer() as peer:
        assert peer.deliver(d, ARNE_URL)[1].status == 202
        assert peer.document_gets == 1
        # The sender rotates its key: the cached one fails, one refetch, 202.
        peer.rotate_key()
        assert peer.deliver(d, ARNE_URL)[1].status == 202
        assert peer.document_gets == 2
        d.wait_log(rf"peer {peer.url}: a signature failed against its cached key")
        # Rotated again within 5 minutes: no second refetch, 401.
        peer.rotate_key()
        _, r = peer.deliver(d, ARNE_URL)
        refused(r, 401, "bad_signature")
        assert peer.document_gets == 2
        assert len(inbox_rows(d)) == 2


@test
def acl_deny_is_403_and_allow_admits():
    with Peer() as denied, Peer() as allowed, Peer() as unlisted:
        d = Daemon([ARNE], autostart=False)
        acl = os.path.join(d.dir, "acl.toml")
        with open(acl, "w") as f:
            f.write(f'allow = ["{denied.url}", "{allowed.url}"]\ndeny = ["{denied.url}"]\n')
        d.args = ["--acl", acl]
        with d:
            d.start()
            _, r = denied.deliver(d, ARNE_URL)
            refused(r, 403, "sender_denied")
            assert denied.document_gets == 0  # refused before any fetch
            refused(unlisted.deliver(d, ARNE_URL)[1], 403, "sender_denied")
            assert allowed.deliver(d, ARNE_URL)[1].status == 202
            assert [row[0] for row in inbox_rows(d)] == [allowed.url]


@test
def an_acl_changed_by_sighup_applies_to_the_running_worker():
    with Peer() as peer:
        d = Daemon([ARNE], autostart=False)
        acl = os.path.join(d.dir, "acl.toml")
        with open(acl, "w") as f:
            f.write("")
        d.args = ["--acl", acl]
        with d:
            d.start()
            pid = d.worker_pid("arne")
            assert peer.deliver(d, ARNE_URL)[1].status == 202
            with open(acl, "w") as f:
                f.write(f'deny = ["{peer.url}"]\n')
            mark = len(d.log())
            d.proc.send_signal(signal.SIGHUP)
            d.wait_log(r"arne\[\d+\]: policy updated: .* 0 allow and 1 deny patterns", start=mark)
            refused(peer.deliver(d, ARNE_URL)[1], 403, "sender_denied")
            # The same worker, not a restart.
            assert d.find_log(r"arne: worker \d+ (started|exited|killed)", start=mark) is None
            d.wait_log(rf"arne\[{pid}\]: policy updated", start=mark)
            assert len(inbox_rows(d)) == 1


@test
def the_rate_limit_is_429_with_retry_after_per_sender_and_per_address():
    with Daemon([ARNE], args=["--rate-per-minute", "3"]) as d, Peer() as a, Peer() as b:
        for _ in range(3):
            assert a.deliver(d, ARNE_URL)[1].status == 202
        # 127.0.0.1 has spent its 3, and so has sender a.
        env = a.envelope(ARNE_URL)
        r = a.send(d, ARNE_URL, env)
        refused(r, 429, "rate_limited")
        assert 1 <= int(r.headers["retry-after"]) <= 20, r
        # From another address, sender a is still over its limit...
        refused(a.send(d, ARNE_URL, env, source="127.0.0.2"), 429, "rate_limited")
        # ...but sender b is not.
        assert b.send(d, ARNE_URL, b.envelope(ARNE_URL), source="127.0.0.2").status == 202
        # And b from the spent address is refused by the address limit.
        refused(b.send(d, ARNE_URL, b.envelope(ARNE_URL)), 429, "rate_limited")
        assert len(inbox_rows(d)) == 4


@test
def a_202_survives_kill_9_of_the_worker_right_after_it():
    with Daemon([ARNE]) as d, Peer() as peer:
        pid = d.worker_pid("arne")
        mark = len(d.log())
        env, r = peer.deliver(d, ARNE_URL)
        os.kill(pid, signal.SIGKILL)
        assert r.status == 202, r
        new_pid = d.worker_pid("arne", start=mark)
        assert new_pid != pid
        assert [row[1] for row in inbox_rows(d)] == [env["id"]]
        again = peer.send(d, ARNE_URL, env)
        assert again.status == 200 and again.json() == {"status": "duplicate"}, again


def man_page_example():
    """The signed delivery of posta-protocol(7)'s EXAMPLE, read from the
    roff source: (public key, envelope bytes, Posta-Signature value)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "man", "posta-protocol.7")
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\")
    example = text[text.index(".SH EXAMPLE"):]
    key = re.search(r'"public_key": "([A-Za-z0-9_-]{43})"', example).group(1)
    signature = re.search(r"-H 'Posta-Signature: (ed25519=[A-Za-z0-9_-]{86})'", example).group(1)
    body = re.search(r"--data-binary '(\{.*\})'", example).group(1).encode("utf-8")
    return key, body, signature


@test
def the_worked_example_of_the_man_page_is_accepted():
    key, body, signature = man_page_example()
    assert len(body) == 219
    marcus = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
    with Daemon([ARNE]) as d:
        # Marcus is not reachable from here: put his document in arne's
        # peer cache, as a fetch would have, with the forced-refetch budget
        # spent (else the tampered copy below would try to reach him).
        now_ms = int(time.time() * 1000)
        db = sqlite3.connect(os.path.join(d.state_dir, "arne", "inbox.db"))
        with db:
            db.execute("INSERT INTO peers (url, public_key, name, inbox, fetched_at, refetched_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (marcus["url"], key, "Marcus", marcus["url"] + "/inbox", now_ms, now_ms))
        db.close()
        sender = Peer()
        sender.stop()
        r = sender.send(d, ARNE_URL, body, signature=signature)
        assert r.status == 202 and r.body == b'{"status":"accepted"}', r
        assert r.headers["content-length"] == str(len(r.body))
        assert sender.send(d, ARNE_URL, body, signature=signature).status == 200
        refused(sender.send(d, ARNE_URL, body.replace(b"Lunch?", b"Lunch!"), signature=signature), 401,
                "bad_signature")
        assert [(row[0], row[1]) for row in inbox_rows(d)] == [(marcus["url"], "AAECAwQFBgcICQoLDA0ODw")]


@test
def other_methods_on_inbox_are_405():
    with Daemon([ARNE]) as d:
        r = d.request("arne.local:8080", path="/inbox")
        assert r.status == 405 and "POST" in r.headers["allow"], r


if __name__ == "__main__":
    main()
