"""Nothing a stranger sends can hold an identity: a body that trickles gets
408 at body_timeout, however steadily it comes; a thousand slow bodies from
one address are capped by max_connections_per_address while other clients
are served as usual, and their refusals are a few log lines, not a thousand;
a chunked body's trailer fields never reach a handler (no Authorization, no
Posta-Signature in a trailer is honoured); and megabytes of chunk extensions
are refused as they arrive."""
import resource
import re
import select
import socket
import time

from peer import Peer
from posta import Daemon, read_until_close, status_of, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
ARNE_HOST = "arne.local:8080"
STRANGER = "127.0.0.2"


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))


def connect_from(d, source, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", d.port))
    return s


def slow_post_head(length):
    return (f"POST /inbox HTTP/1.1\r\nHost: {ARNE_HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def chunked(method, path, body_and_trailer, headers=""):
    return (f"{method} {path} HTTP/1.1\r\nHost: {ARNE_HOST}\r\nTransfer-Encoding: chunked\r\n{headers}"
            f"Connection: close\r\n\r\n").encode() + body_and_trailer


def chunk(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@test
def a_body_that_trickles_gets_408_at_body_timeout():
    with Daemon([ARNE], config={"body_timeout": "3s"}) as d:
        s = connect_from(d, "127.0.0.1")
        s.sendall(slow_post_head(1000))
        started = time.monotonic()
        answer = b""
        # One byte a second: every byte is progress, none of it is enough.
        while time.monotonic() - started < 15:
            try:
                s.sendall(b"{")
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(1.0)
            try:
                got = s.recv(65536)
                if not got:
                    break
                answer += got
                if b"\r\n\r\n" in answer:
                    break
            except socket.timeout:
                pass
        took = time.monotonic() - started
        s.close()
        assert answer, f"no answer to a trickling body after {took:.1f}s"
        assert status_of(answer) == 408, answer[:200]
        assert took < 3 + 5, took
        # The identity serves others meanwhile and after.
        assert d.request(ARNE_HOST).status == 200


@test
def a_thousand_slow_bodies_from_one_address_leave_others_served():
    clients = 1000
    raise_fd_limit(4 * clients)
    config = {"worker_open_files": 64, "max_connections_per_address": 16, "body_timeout": "60s"}
    with Daemon([ARNE], config=config) as d:
        start = len(d.log())
        slow = []
        refused = 0
        try:
            for _ in range(clients):
                s = connect_from(d, STRANGER)
                s.sendall(slow_post_head(100) + b"{")
                slow.append(s)
            # The first ones are served slowly; beyond the cap each is told
            # 429 and closed. Other clients are served as usual meanwhile.
            latencies = []
            for _ in range(20):
                began = time.monotonic()
                r = d.request(ARNE_HOST, timeout=10.0)
                latencies.append(time.monotonic() - began)
                assert r.status == 200, r
            assert max(latencies) < 2.0, latencies
            for s in slow:
                s.settimeout(0.2)
                try:
                    got = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    continue
                if got.startswith(b"HTTP/1.1 429 "):
                    refused += 1
            assert refused >= clients - 16 - 50, f"{refused} of {clients} over the cap were told 429"
            # The stranger still holds its 16, and each trickles on.
            for s in slow:
                try:
                    s.sendall(b" ")
                except OSError:
                    pass
            assert d.request(ARNE_HOST).status == 200
        finally:
            for s in slow:
                s.close()
        # A thousand refusals are a few lines, with their count.
        wait_for(lambda: d.find_log(r"and \d+ more in the last", start), timeout=20,
                 what="the summary of the refusals")
        lines = [l for l in d.log()[start:] if STRANGER in l]
        assert len(lines) <= 10, "\n".join(lines[:20])
        assert d.stop() == 0


@test
def authorization_in_a_trailer_is_not_honoured():
    with Daemon([ARNE]) as d:
        token = d.token("arne")
        plain = chunked("GET", "/api/messages", b"0\r\n\r\n", headers=f"Authorization: Bearer {token}\r\n")
        assert status_of(d.raw(plain)) == 200
        trailer = chunked("GET", "/api/messages", f"0\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        answer = d.raw(trailer)
        assert status_of(answer) == 401, answer[:300]


@test
def a_signature_in_a_trailer_is_not_honoured():
    with Daemon([ARNE]) as d, Peer() as peer:
        body = peer.encode(peer.envelope(ARNE["url"]))
        trailer = f"Posta-Signature: {peer.signature_header(body)}\r\n".encode()
        request = chunked("POST", "/inbox", chunk(body) + b"0\r\n" + trailer + b"\r\n",
                          headers="Content-Type: application/json\r\n")
        answer = d.raw(request, timeout=15.0)
        assert status_of(answer) == 401, answer[:300]
        assert b"missing_signature" in answer or b"signature" in answer, answer[:300]
        # The same envelope with its signature in the head is accepted.
        signed = chunked("POST", "/inbox", chunk(body) + b"0\r\n\r\n",
                         headers=f"Content-Type: application/json\r\nPosta-Signature: {peer.signature_header(body)}\r\n")
        assert status_of(d.raw(signed, timeout=15.0)) == 202


@test
def four_mib_of_chunk_extensions_get_413_as_they_arrive():
    with Daemon([ARNE], config={"max_body_bytes": 2048}) as d:
        s = connect_from(d, "127.0.0.1")
        s.sendall(chunked("POST", "/inbox", b"1;ext=", headers="Content-Type: application/json\r\n"))
        piece = b"a" * 65536
        sent = 0
        s.setblocking(False)
        answer = b""
        deadline = time.monotonic() + 30
        # Send 4 MiB of one extension while reading: the answer comes long
        # before the end, and the rest is never parsed.
        while sent < 4 * 1024 * 1024 and time.monotonic() < deadline:
            try:
                got = s.recv(65536)
                if not got:
                    break
                answer += got
                if b"\r\n\r\n" in answer:
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            try:
                sent += s.send(piece)
            except BlockingIOError:
                select.select([s], [s], [], 1.0)  # until it can read an answer or send more
            except (BrokenPipeError, ConnectionResetError):
                break
        s.setblocking(True)
        s.settimeout(10)
        if b"\r\n\r\n" not in answer:
            try:
                s.sendall(b"\r\nx\r\n0\r\n\r\n")
            except OSError:
                pass
            try:
                answer += read_until_close(s)
            except socket.timeout:
                pass
        s.close()
        assert answer, f"no answer after {sent} bytes of chunk extensions"
        assert status_of(answer) == 413, answer[:300]
        assert d.request(ARNE_HOST).status == 200


if __name__ == "__main__":
    main()
