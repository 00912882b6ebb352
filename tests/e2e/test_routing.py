"""The supervisor routes by Host and answers 400/404/408/431/503 itself."""
import os
import socket
import time

from posta import Daemon, read_until_close, status_of, test, main, wait_for, wait_read_by_server

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}


@test
def empty_manifest_boots_and_404s_every_host():
    with Daemon([]) as d:
        for host in ("arne.local", "example.org", "127.0.0.1", "[::1]:8080"):
            r = d.request(host)
            assert r.status == 404, r
            assert r.json()["error"] == "unknown_host", r
            assert r.headers["connection"] == "close", r
        assert d.stop() == 0


@test
def two_identities_reach_two_distinct_workers():
    with Daemon([ARNE, MARCUS]) as d:
        arne_pid, marcus_pid = d.worker_pid("arne"), d.worker_pid("marcus")
        assert arne_pid != marcus_pid
        arne = d.request("arne.local:8080")
        marcus = d.request("MARCUS.LOCAL.")
        assert arne.status == 200 and marcus.status == 200, (arne, marcus)
        a, m = arne.json(), marcus.json()
        assert a["url"] == "http://arne.local:8080" and a["name"] == "Arne", a
        assert m["url"] == "http://marcus.local:8080" and m["name"] == "Marcus", m
        assert a["inbox"] == "http://arne.local:8080/inbox", a
        assert a["posta"] == 1
        assert a["public_key"] != m["public_key"]
        assert arne.headers["content-type"].startswith("application/json")
        assert arne.headers["cache-control"] == "max-age=300"
        assert d.stop() == 0


@test
def head_of_the_identity_document_has_headers_and_no_body():
    with Daemon([ARNE]) as d:
        get = d.request("arne.local")
        head = d.request("arne.local", method="HEAD")
        assert head.status == 200 and head.body == b"", head
        assert head.headers["content-length"] == str(len(get.body))


@test
def unknown_host_is_404_and_other_paths_404_json():
    with Daemon([ARNE]) as d:
        assert d.request("nobody.local").status == 404
        r = d.request("arne.local", path="/nothing/here")
        assert r.status == 404 and r.json()["error"] == "not_found", r


@test
def http11_without_host_is_400_and_http10_without_host_is_404():
    with Daemon([ARNE]) as d:
        raw = d.raw(b"GET /.well-known/posta HTTP/1.1\r\nAccept: */*\r\n\r\n")
        assert status_of(raw) == 400, raw
        raw = d.raw(b"GET /.well-known/posta HTTP/1.0\r\n\r\n")
        assert status_of(raw) == 404, raw


@test
def two_host_headers_and_malformed_heads_are_400():
    with Daemon([ARNE]) as d:
        raw = d.raw(b"GET / HTTP/1.1\r\nHost: arne.local\r\nHost: marcus.local\r\n\r\n")
        assert status_of(raw) == 400, raw
        raw = d.raw(b"\x16\x03\x01\x00\x05hello\r\n\r\n")
        assert status_of(raw) == 400, raw
        raw = d.raw(b"GET / HTTP/1.1\r\nHost: bad host!\r\n\r\n")
        assert status_of(raw) == 400, raw


@test
def a_head_over_max_head_bytes_is_431():
    with Daemon([ARNE], config={"max_head_bytes": 2048}) as d:
        head = b"GET / HTTP/1.1\r\nHost: arne.local\r\nX-Filler: " + b"x" * 4000 + b"\r\n\r\n"
        assert status_of(d.raw(head)) == 431
        # The bound also holds when the head arrives in pieces.
        with d.connect() as s:
            s.sendall(head[:1000])
            # The supervisor reads the first piece alone before the second is sent.
            wait_read_by_server(s, d.port, what="the supervisor to read the first piece")
            s.sendall(head[1000:])
            assert status_of(read_until_close(s)) == 431


@test
def a_head_not_complete_within_head_timeout_is_408():
    with Daemon([ARNE], config={"head_timeout": "300ms"}) as d:
        with d.connect() as s:
            s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.lo")
            started = time.monotonic()
            raw = read_until_close(s)
            elapsed = time.monotonic() - started
        assert status_of(raw) == 408, raw
        assert elapsed < 5, elapsed


@test
def a_head_trickled_byte_by_byte_reaches_the_worker_whole():
    with Daemon([ARNE]) as d:
        head = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n"
        with d.connect() as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(head)):
                s.sendall(head[i:i + 1])
                time.sleep(0.002)  # one segment a byte (with TCP_NODELAY): the trickle under test
            raw = read_until_close(s)
        assert status_of(raw) == 200, raw
        assert b'"url":"http://arne.local:8080"' in raw.replace(b" ", b""), raw


@test
def a_passed_connection_carries_its_pipelined_requests():
    with Daemon([ARNE]) as d:
        one = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n"
        two = b"GET /nothing HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n"
        with d.connect() as s:
            s.sendall(one + two)
            raw = read_until_close(s)
        assert raw.count(b"HTTP/1.1 200 ") == 1 and raw.count(b"HTTP/1.1 404 ") == 1, raw
        assert raw.index(b"HTTP/1.1 200 ") < raw.index(b"HTTP/1.1 404 ")


@test
def keep_alive_to_another_identitys_host_is_421_and_closed():
    with Daemon([ARNE, MARCUS]) as d:
        with d.connect() as s:
            s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n")
            first = s.recv(65536)
            assert status_of(first) == 200, first
            s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: marcus.local\r\n\r\n")
            rest = read_until_close(s)
        assert status_of(rest) == 421, rest
        assert b"Marcus" not in rest


@test
def an_identity_whose_worker_cannot_start_gets_503_with_retry_after():
    with Daemon([ARNE, MARCUS], autostart=False) as d:
        # A keys.json readable by others is refused; the worker never gets ready.
        os.makedirs(os.path.join(d.state_dir, "arne"), mode=0o700)
        keys = os.path.join(d.state_dir, "arne", "keys.json")
        with open(keys, "w") as f:
            f.write("{}")
        os.chmod(keys, 0o644)
        d.start(wait_ready=False)
        d.worker_pid("marcus")
        d.wait_log(r"keys\.json", what="the refusal of arne's keys")
        r = d.request("arne.local")
        assert r.status == 503, r
        assert r.headers.get("retry-after") == "1", r
        assert r.json()["error"] == "identity_unavailable"
        assert d.request("marcus.local").status == 200
        d.wait_log(r"arne: worker \d+ .*before it was ready; restarting in", what="a restart with backoff")
        assert d.stop() == 0


if __name__ == "__main__":
    main()
