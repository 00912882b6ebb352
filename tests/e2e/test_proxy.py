"""Behind fronts: PROXY protocol v1 and v2 headers and X-Forwarded-For from a
trusted proxy give the daemon the real client (its rate-limit bucket, its log
lines), the same from any other address do not; trusted_proxies follows
SIGHUP; Debian's haproxy with send-proxy-v2 in front does it for real. A
plain-HTTP request for an https identity: 308 to its https URL, or its ACME
challenge file, never a file outside that folder. `check` warns of an
identity port no listener has.

The trusted proxy is 127.0.0.1; an untrusted client connects from 127.0.0.2.
The clients a header claims are other loopback addresses: data, never
connected to."""
import json
import os
import socket
import ssl
import struct
import subprocess

import posta
from posta import (BINARY, Daemon, Haproxy, read_until_close, status_of, test, main, wait_read_by_server)

# test_tls's CA and daemon setup, without its tests: importing it registers
# them with the harness, so the list is put back.
_own_tests = list(posta.TESTS)
from test_tls import client_context, start as start_tls, tls_daemon  # noqa: E402
posta.TESTS[:] = _own_tests

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
TRUSTED = {"trusted_proxies": ["127.0.0.1/32"]}
TLS_ARNE = {"slug": "arne", "url": "https://arne.local", "name": "Arne"}
UNTRUSTED_SOURCE = "127.0.0.2"
# Two deliveries per minute per client address: the third is 429.
RATE = ["--rate-per-minute", "2"]


def v1(client, port=40000):
    return f"PROXY TCP4 {client} 127.0.0.1 {port} 8080\r\n".encode()


def v2(client=None, port=40000, tlv=b""):
    """A v2 PROXY TCP4 header for `client`, or LOCAL when client is None."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    if client is None:
        return signature + b"\x20\x00" + struct.pack("!H", len(tlv)) + tlv
    block = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 8080) + tlv
    return signature + b"\x21\x11" + struct.pack("!H", len(block)) + block


def delivery(headers=b""):
    """A POST /inbox whose body is no envelope: it takes a token of its
    client's bucket (the limit is checked first), then is refused 400."""
    return (b"POST /inbox HTTP/1.1\r\nHost: arne.local\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1\r\nConnection: close\r\n" + headers + b"\r\nx")


def exchange(d, data, source="127.0.0.1", pieces=None):
    """Sends `data` from `source` (in `pieces`, each read by the server
    before the next is sent, when given); returns the raw answer."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=10, source_address=(source, 0)) as s:
        for piece in pieces or [data]:
            s.sendall(piece)
            if pieces:
                wait_read_by_server(s, d.port)
        return read_until_close(s)


def error_of(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]


def inbox_status(d, data, source="127.0.0.1", pieces=None):
    raw = exchange(d, data, source, pieces)
    status = status_of(raw)
    if status == 400:
        # The inbox's refusal of the body, not the supervisor's of the head.
        assert error_of(raw) != "bad_request", raw
    return status


def supervisor_refused(raw):
    """The supervisor's own 400, or a plain close."""
    return raw == b"" or (status_of(raw) == 400 and error_of(raw) == "bad_request")


def buckets_are_separate(d, first, second, what):
    """`first` and `second` (request bytes) claim two clients: two
    deliveries of the first go through to the body check, the third is
    rate-limited, and the second still has its own bucket."""
    assert [inbox_status(d, first) for _ in range(3)] == [400, 400, 429], what
    assert inbox_status(d, second) == 400, f"{what}: the second client shares the first's bucket"


@test
def proxy_v1_gives_each_claimed_client_its_own_bucket_and_log_line():
    with Daemon([ARNE], config=TRUSTED, args=RATE) as d:
        buckets_are_separate(d, v1("127.0.0.21") + delivery(), v1("127.0.0.22") + delivery(), "PROXY v1")
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.21:40000")
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.22:40000")


@test
def proxy_v2_gives_each_claimed_client_its_own_bucket_and_local_keeps_the_front():
    with Daemon([ARNE], config=TRUSTED, args=RATE) as d:
        noop_tlv = b"\x04\x00\x03abc"  # TLVs are skipped, counted in the header's length
        buckets_are_separate(d, v2("127.0.0.31", tlv=noop_tlv) + delivery(), v2("127.0.0.32") + delivery(),
                             "PROXY v2")
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.31:40000")
        # LOCAL (a health check of the front) speaks for nobody: the
        # connection's own address is the client.
        assert inbox_status(d, v2(None) + delivery()) == 400
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.1:\d+")


@test
def trusted_x_forwarded_for_gives_each_client_its_own_bucket():
    with Daemon([ARNE], config=TRUSTED, args=RATE) as d:
        # The front appends what it saw; whatever the client wrote is left
        # of a trusted hop and not believed past the first untrusted one.
        first = delivery(b"X-Forwarded-For: 127.0.0.99, 127.0.0.41\r\n")
        second = delivery(b"X-Forwarded-For: 127.0.0.41, 127.0.0.42, 127.0.0.1\r\n")
        buckets_are_separate(d, first, second, "X-Forwarded-For")
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.41 via 127\.0\.0\.1:\d+")
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.42 via 127\.0\.0\.1:\d+")


@test
def from_an_untrusted_address_proxy_headers_are_refused_and_x_forwarded_for_ignored():
    with Daemon([ARNE], config=TRUSTED, args=RATE) as d:
        for header in (v1("127.0.0.21"), v2("127.0.0.31")):
            raw = exchange(d, header + delivery(), source=UNTRUSTED_SOURCE)
            assert supervisor_refused(raw), raw
        # X-Forwarded-For is the stranger's own claim: every claim lands in
        # the one bucket of its real address.
        statuses = [inbox_status(d, delivery(b"X-Forwarded-For: 127.0.0.%d\r\n" % (50 + i)), UNTRUSTED_SOURCE)
                    for i in range(3)]
        assert statuses == [400, 400, 429], statuses
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.2:\d+")
        assert not d.find_log(r"for 127\.0\.0\.5\d"), "an untrusted X-Forwarded-For reached a log line"
    # With no trusted proxy at all, 127.0.0.1 is a stranger too.
    with Daemon([ARNE]) as d:
        assert supervisor_refused(exchange(d, v1("127.0.0.21") + delivery()))
        assert supervisor_refused(exchange(d, v2("127.0.0.31") + delivery()))


@test
def a_trusted_proxy_is_not_capped_by_max_connections_per_address():
    """An HTTP front brings many clients over one address; a stranger's
    second connection is still refused."""
    def held_open(source):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10, source_address=(source, 0))
        s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n")
        assert status_of(s.recv(65536)) == 200  # taken by the worker, and kept alive
        return s

    with Daemon([ARNE], config=dict(TRUSTED, max_connections_per_address=1)) as d:
        held = [held_open("127.0.0.1"), held_open(UNTRUSTED_SOURCE)]
        try:
            again = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n"
            assert status_of(exchange(d, again)) == 200
            assert status_of(exchange(d, again, source=UNTRUSTED_SOURCE)) == 429
        finally:
            for s in held:
                s.close()


@test
def a_proxy_header_split_across_writes_is_read_whole_and_only_it():
    with Daemon([ARNE], config=TRUSTED, args=RATE) as d:
        header = v1("127.0.0.61")
        request = delivery()
        # Within the signature, within the line, then the header's end with
        # the first bytes of the head.
        assert inbox_status(d, None, pieces=[header[:3], header[3:20], header[20:] + request[:10], request[10:]]) == 400
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.61:40000")
        header = v2("127.0.0.62")
        assert inbox_status(d, None, pieces=[header[:7], header[7:14], header[14:22], header[22:], request]) == 400
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.62:40000")
        # A head that only begins like a header ("PRO..."): read as a head.
        raw = exchange(d, None, pieces=[b"PRO", b"PFIND / HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n"])
        assert status_of(raw) in (404, 405), raw
        # A header that never ends is bounded by head_timeout like a head.
    with Daemon([ARNE], config=dict(TRUSTED, head_timeout="300ms")) as d:
        raw = exchange(d, None, pieces=[b"PROXY TCP4 127.0.0.1"])
        assert status_of(raw) == 408, raw


@test
def a_bad_proxy_header_from_a_trusted_proxy_is_400():
    with Daemon([ARNE], config=TRUSTED) as d:
        for bad in (b"PROXY TCP4 127.0.0.1 nonsense\r\n", b"PROXY TCP4 " + b"1" * 120,
                    b"\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c" + b"\x00" * 12):
            raw = exchange(d, bad + delivery())
            assert supervisor_refused(raw), (bad, raw)
        d.wait_log(r"bad PROXY header from a trusted proxy")


@test
def trusted_proxies_follows_sighup():
    with Daemon([ARNE], args=RATE) as d:
        assert supervisor_refused(exchange(d, v1("127.0.0.71") + delivery()))
        mark = len(d.log())
        d.write_config(TRUSTED)
        assert "reload done" in d.reload().group(0)
        d.wait_log(r"arne\[\d+\]: policy updated: .* 1 trusted proxies", start=mark)
        assert inbox_status(d, v1("127.0.0.71") + delivery()) == 400
        assert inbox_status(d, delivery(b"X-Forwarded-For: 127.0.0.72\r\n")) == 400
        d.wait_log(r"inbox: 400 \S+ for 127\.0\.0\.71:40000", start=mark)
        d.wait_log(r"inbox: 400 \S+ for 127\.0\.0\.72 via 127\.0\.0\.1", start=mark)


@test
def a_proxy_header_before_a_client_hello_names_the_client_of_a_tls_connection():
    """A TLS-passthrough front (HAProxy mode tcp, send-proxy-v2): the header,
    then the client's own TLS, which the identity's worker terminates."""
    d, pki, _ = tls_daemon([TLS_ARNE], ("arne",), config=TRUSTED)
    d.args += RATE

    def over_tls(header, source="127.0.0.1", split=False):
        raw = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10, source_address=(source, 0))
        try:
            for piece in ([header[:5], header[5:]] if split else [header]):
                raw.sendall(piece)
                if split:
                    wait_read_by_server(raw, d.tls_port)
            with client_context(pki).wrap_socket(raw, server_hostname="arne.local") as s:
                s.sendall(delivery())
                answer = read_until_close(s)
        finally:
            raw.close()
        # Over TLS an https identity's inbox answers: no 308.
        assert status_of(answer) != 400 or error_of(answer) != "bad_request", answer
        return status_of(answer)

    with start_tls(d):
        assert [over_tls(v2("127.0.0.91")) for _ in range(3)] == [400, 400, 429]
        assert over_tls(v2("127.0.0.92"), split=True) == 400, "the second client shares the first's bucket"
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.91:40000")
        d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.92:40000")
        # From a stranger the header is refused; on TLS that is a close.
        try:
            over_tls(v2("127.0.0.93"), source=UNTRUSTED_SOURCE)
            raise AssertionError("a PROXY header from an untrusted address reached the worker over TLS")
        except (ssl.SSLError, ConnectionError):
            pass


# ---- plain HTTP for an https identity ----

SECURE = {"slug": "arne", "url": "https://arne.local:8443", "name": "Arne"}
MARCUS_ON_8080 = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
TOKEN = "Xy_9-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ab"


def challenge_dir(d):
    return os.path.join(d.state_dir, "arne", "acme-challenge")


@test
def a_plain_request_for_an_https_identity_is_redirected_with_path_and_query():
    with Daemon([SECURE]) as d:
        # Routed by host name: the identity's port (8443) is not the listener's.
        r = d.request(f"arne.local:{d.port}", path="/api/messages?limit=5&after=x")
        assert r.status == 308, r
        assert r.headers["location"] == "https://arne.local:8443/api/messages?limit=5&after=x", r
        r = d.request("arne.local", method="POST", path="/inbox", body=b"{}")
        assert r.status == 308 and r.headers["location"] == "https://arne.local:8443/inbox", r
        # A trusted front took the client's TLS: served; unless it says the
        # client came over plain HTTP.
    with Daemon([SECURE], config=TRUSTED) as d:
        assert d.request("arne.local").status == 200
        r = d.request("arne.local", headers={"X-Forwarded-Proto": "http"})
        assert r.status == 308, r
        # A client's own connection relayed with a PROXY header is plain.
        raw = exchange(d, v1("127.0.0.81") + b"GET / HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n")
        assert status_of(raw) == 308, raw


@test
def the_acme_challenge_file_is_served_over_plain_http():
    with Daemon([SECURE]) as d:
        os.makedirs(challenge_dir(d))
        with open(os.path.join(challenge_dir(d), TOKEN), "w") as f:
            f.write(TOKEN + ".key-authorization")
        r = d.request("arne.local", path=f"/.well-known/acme-challenge/{TOKEN}")
        assert r.status == 200, r
        assert r.body == (TOKEN + ".key-authorization").encode(), r
        assert d.request("arne.local", method="HEAD", path=f"/.well-known/acme-challenge/{TOKEN}").status == 200
        r = d.request("arne.local", path="/.well-known/acme-challenge/missing")
        assert r.status == 404, r


@test
def a_traversal_or_symlink_token_is_refused():
    with Daemon([SECURE]) as d:
        os.makedirs(challenge_dir(d))
        identity_dir = os.path.join(d.state_dir, "arne")
        os.symlink(os.path.join(identity_dir, "keys.json"), os.path.join(challenge_dir(d), "linked"))
        for path in ("/.well-known/acme-challenge/../keys.json", "/.well-known/acme-challenge/..%2fkeys.json",
                     "/.well-known/acme-challenge/%2e%2e%2fkeys.json", "/.well-known/acme-challenge/linked",
                     "/.well-known/acme-challenge/", "/.well-known/acme-challenge/a.b"):
            r = d.request("arne.local", path=path)
            assert r.status == 404, (path, r)
            assert b"secret" not in r.body and b"public_key" not in r.body, (path, r)
        # The folder itself a symlink: not followed either.
        outside = os.path.join(d.dir, "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, TOKEN), "w") as f:
            f.write("outside")
        os.rename(challenge_dir(d), challenge_dir(d) + ".old")
        os.symlink(outside, challenge_dir(d))
        r = d.request("arne.local", path=f"/.well-known/acme-challenge/{TOKEN}")
        assert r.status == 404, r


def http_front(directory, backend_port):
    """Debian's haproxy in mode http, sending every connection to
    `backend_port` with send-proxy-v2."""
    return Haproxy(directory, "http", """frontend posta_plain
    bind 127.0.0.1:{port}
    default_backend posta
backend posta
    http-reuse never
    server posta 127.0.0.1:%d send-proxy-v2
""" % backend_port)


@test
def haproxy_with_send_proxy_v2_brings_the_real_client_to_buckets_and_logs():
    with Daemon([ARNE], config=TRUSTED, args=RATE) as d:
        front = http_front(d.dir, d.port)
        try:
            def through_front(source):
                with socket.create_connection(("127.0.0.1", front.port), timeout=10, source_address=(source, 0)) as s:
                    s.sendall(delivery())
                    raw = read_until_close(s)
                assert status_of(raw) != 400 or error_of(raw) != "bad_request", raw
                return status_of(raw)
            assert [through_front("127.0.0.2") for _ in range(3)] == [400, 400, 429]
            assert through_front("127.0.0.3") == 400, "the second client shares the first's bucket"
            d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.2:\d+")
            d.wait_log(r"arne\[\d+\]: inbox: 400 \S+ for 127\.0\.0\.3:\d+")
        finally:
            front.close()


def check(d, *listen):
    args = [BINARY, "check", "--manifest", d.manifest, "--config", d.config_path]
    for value in listen:
        args += ["--listen", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@test
def check_warns_of_an_identity_port_no_listener_has_unless_a_proxy_is_trusted():
    d = Daemon([SECURE, MARCUS_ON_8080], autostart=False)
    with d:
        def port_warnings(r):
            assert r.returncode == 0, r
            return [line for line in r.stderr.splitlines() if line.startswith("warning:") and "has port" in line]
        warnings = port_warnings(check(d))  # the default listener, 127.0.0.1:8080
        assert len(warnings) == 1, warnings
        assert "arne: its URL https://arne.local:8443 has port 8443" in warnings[0], warnings
        assert "--listen" in warnings[0] and "trusted_proxies" in warnings[0], warnings
        assert port_warnings(check(d, "127.0.0.1:8080", "https://[::1]:8443")) == []
        d.write_config(TRUSTED)
        assert port_warnings(check(d, "127.0.0.1:8080")) == []


if __name__ == "__main__":
    main()
