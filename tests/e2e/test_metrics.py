"""The metrics endpoint (metrics_listen) against the real daemon: the
Prometheus text format, only GET /metrics on its own listener and never on a
public one, off by default, and counters that follow what the test does —
requests by status class, deliveries accepted, duplicate and refused, a
worker crash (up 0 then 1, restarts), reloads and rejected reloads, and a
hung worker whose report goes stale."""
import os
import re
import shutil
import signal
import socket
import urllib.request

from peer import Keypair, Peer
from posta import Daemon, listening_inodes, open_fds, read_until_close, status_of, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
METRICS = {"metrics_listen": "127.0.0.1:0"}

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def metrics_port(daemon):
    return int(daemon.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))


def fetch(daemon, path="/metrics", method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{metrics_port(daemon)}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def parse(text):
    """{(name, ((label, value), ...)): value} of a text exposition, checking
    the format on the way: HELP then TYPE before a family's samples, every
    sample in its family's group, counters named *_total, valid names."""
    samples = {}
    families = {}
    current = None
    lines = text.split("\n")
    assert lines[-1] == "", "the text ends with a line feed"
    for line in lines[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert NAME.match(name) and name not in families, line
            current = name
            families[name] = None
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in ("counter", "gauge"), line
            assert (kind == "counter") == name.endswith("_total"), line
            families[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        name, labels, value = match.groups()
        assert name == current and families[name], f"{line!r} outside its family"
        parsed = []
        rest = labels or ""
        while rest:
            label = LABEL.match(rest)
            assert label, f"bad labels in {line!r}"
            parsed.append((label.group(1), label.group(2)))
            rest = rest[label.end():]
        key = (name, tuple(parsed))
        assert key not in samples, f"repeated sample {line!r}"
        samples[key] = float(value)
    return samples


def scrape(daemon):
    status, headers, body = fetch(daemon)
    assert status == 200, (status, body)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    return parse(body)


def value(samples, name, **labels):
    return samples.get((name, tuple(labels.items())), 0.0)


def wait_metric(daemon, name, predicate, what=None, timeout=15.0, **labels):
    """Scrapes until `name{labels}` satisfies `predicate`; returns the scrape."""
    seen = {}

    def check():
        samples = scrape(daemon)
        seen["last"] = value(samples, name, **labels)
        return samples if predicate(seen["last"]) else None
    try:
        return wait_for(check, timeout=timeout, what=what or f"{name}{labels}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last value {seen.get('last')}") from None


@test
def metrics_are_off_by_default():
    with Daemon([ARNE]) as d:
        assert not d.find_log(r"metrics on"), d.log()
        # The supervisor listens on the public port and nowhere else.
        listening = listening_inodes()
        sockets = [t for t in open_fds(d.proc.pid).values() if t.startswith("socket:[")]
        mine = [t for t in sockets if t[len("socket:["):-1] in listening]
        assert len(mine) == 1, mine


@test
def the_endpoint_speaks_the_text_format_and_answers_only_get_metrics():
    with Daemon([ARNE, MARCUS], config=METRICS) as d:
        samples = scrape(d)
        for slug in ("arne", "marcus"):
            assert value(samples, "posta_worker_up", identity=slug) == 1, samples
            assert value(samples, "posta_worker_restarts_total", identity=slug) == 0
        # Manifest order, one group per family.
        text = fetch(d)[2]
        assert text.index('posta_worker_up{identity="arne"}') < text.index('posta_worker_up{identity="marcus"}')
        assert value(samples, "posta_identities") == 2

        status, headers, body = fetch(d, method="HEAD")
        assert status == 200 and body == "" and int(headers["Content-Length"]) > 1000, (status, headers)
        status, _, body = fetch(d, "/metrics?name=x")
        assert status == 200 and "posta_worker_up" in body
        assert fetch(d, "/")[0] == 404
        assert fetch(d, "/metricsx")[0] == 404
        status, headers, _ = fetch(d, method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD", (status, headers)

        port = metrics_port(d)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert status_of(read_until_close(s)) == 400
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n")
            assert status_of(read_until_close(s)) == 431
        # Keep-alive is not offered: the answer ends with the connection,
        # even when the client asks for more and sends a second request.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n\r\n")
            answer = read_until_close(s)
            assert status_of(answer) == 200 and answer.count(b"HTTP/1.1") == 1
            assert b"Connection: close" in answer


@test
def the_endpoint_is_not_on_the_public_listener():
    with Daemon([ARNE], config=METRICS) as d:
        before = scrape(d)
        # No identity at this host: the supervisor's own 404.
        reply = d.request(f"127.0.0.1:{d.port}", path="/metrics")
        assert reply.status == 404 and reply.json()["error"] == "unknown_host", reply
        # An identity's host: routed to its worker like any other path.
        reply = d.request("arne.local:8080", path="/metrics")
        assert reply.status == 404, reply
        assert b"posta_" not in reply.body, reply
        after = wait_metric(d, "posta_http_responses_total", lambda v: v >= 1, identity="arne", code="4xx")
        assert value(after, "posta_supervisor_responses_total", code="404") \
            == value(before, "posta_supervisor_responses_total", code="404") + 1
        assert value(after, "posta_connections_accepted_total") == value(before, "posta_connections_accepted_total") + 2


@test
def responses_are_counted_by_status_class():
    with Daemon([ARNE, MARCUS], config=METRICS) as d:
        for _ in range(3):
            assert d.request("arne.local:8080").status == 200
        for _ in range(2):
            assert d.request("arne.local:8080", path="/no/such/path").status == 404
        assert d.request("arne.local:8080", method="GET", path="/api/messages").status == 401
        samples = wait_metric(d, "posta_http_responses_total", lambda v: v == 3, identity="arne", code="2xx")
        assert value(samples, "posta_http_responses_total", identity="arne", code="4xx") == 3, samples
        assert value(samples, "posta_http_responses_total", identity="arne", code="5xx") == 0
        # The other identity saw none of it.
        for code in ("2xx", "4xx"):
            assert value(samples, "posta_http_responses_total", identity="marcus", code=code) == 0
        # A connection held open is counted while open.
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local:8080\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            wait_metric(d, "posta_open_connections", lambda v: v == 1, identity="arne")
        wait_metric(d, "posta_open_connections", lambda v: v == 0, identity="arne")


@test
def deliveries_are_counted_accepted_duplicate_and_refused_by_reason():
    with Daemon([ARNE], config=METRICS) as d, Peer() as peer:
        env, first = peer.deliver(d, ARNE["url"])
        assert first.status == 202, first
        assert peer.send(d, ARNE["url"], env).status == 200
        assert peer.send(d, ARNE["url"], env).status == 200
        body = peer.encode(peer.envelope(ARNE["url"]))
        forged = peer.signature_header(body, keys=Keypair())
        assert peer.send(d, ARNE["url"], body, signature=forged).status == 401
        assert peer.send(d, ARNE["url"], body, signature=forged).status == 401
        wrong = peer.send(d, ARNE["url"], peer.envelope("http://someone.local:8080"))
        assert wrong.status == 421, wrong
        samples = wait_metric(d, "posta_inbox_refusals_total", lambda v: v == 1, identity="arne",
                              reason="wrong_recipient")
        assert value(samples, "posta_inbox_deliveries_total", identity="arne", outcome="accepted") == 1, samples
        assert value(samples, "posta_inbox_deliveries_total", identity="arne", outcome="duplicate") == 2
        assert value(samples, "posta_inbox_refusals_total", identity="arne", reason="bad_signature") == 2
        refusals = {labels: v for (name, labels), v in samples.items() if name == "posta_inbox_refusals_total"}
        assert sum(refusals.values()) == 3, refusals


@test
def a_crashed_worker_is_down_then_up_with_its_restarts_counted():
    with Daemon([ARNE, MARCUS], config=METRICS) as d:
        for _ in range(2):
            assert d.request("arne.local:8080").status == 200
        wait_metric(d, "posta_http_responses_total", lambda v: v == 2, identity="arne", code="2xx")

        pid = d.worker_pid("arne")
        mark = len(d.log())
        os.kill(pid, signal.SIGKILL)
        new_pid = d.worker_pid("arne", start=mark)
        samples = wait_metric(d, "posta_worker_restarts_total", lambda v: v == 1, identity="arne")
        assert value(samples, "posta_worker_up", identity="arne") == 1, samples
        assert value(samples, "posta_worker_restarts_total", identity="marcus") == 0
        # What the dead process counted carries over into the new one's.
        assert d.request("arne.local:8080").status == 200
        wait_metric(d, "posta_http_responses_total", lambda v: v == 3, identity="arne", code="2xx")

        # A worker that cannot start is down, and stays down while it backs
        # off; it is up again once it can start.
        folder = os.path.join(d.state_dir, "arne")
        shutil.move(folder, folder + ".away")
        with open(folder, "w") as f:
            f.write("not a folder\n")
        mark = len(d.log())
        os.kill(new_pid, signal.SIGKILL)
        d.wait_log(r"arne: worker \d+ .* before it was ready; restarting in", start=mark)
        samples = wait_metric(d, "posta_worker_up", lambda v: v == 0, identity="arne")
        assert value(samples, "posta_worker_restarts_total", identity="arne") >= 3, samples
        assert value(samples, "posta_worker_up", identity="marcus") == 1
        os.remove(folder)
        shutil.move(folder + ".away", folder)
        samples = wait_metric(d, "posta_worker_up", lambda v: v == 1, identity="arne", timeout=30)
        assert value(samples, "posta_http_responses_total", identity="arne", code="2xx") == 3, samples


@test
def a_hung_worker_stops_reporting_and_its_report_goes_stale():
    with Daemon([ARNE, MARCUS], config=METRICS) as d:
        arne = d.worker_pid("arne")
        first = wait_metric(d, "posta_worker_report_timestamp_seconds", lambda v: v > 0, identity="arne")
        stamp = value(first, "posta_worker_report_timestamp_seconds", identity="arne")
        os.kill(arne, signal.SIGSTOP)
        try:
            # Its requests wait in its channel; the other identity's report
            # moves on with its own traffic, arne's stays where it was.
            held = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            held.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local:8080\r\n\r\n")
            assert d.request("marcus.local:8080").status == 200
            moved = wait_metric(d, "posta_worker_report_timestamp_seconds", lambda v: v > stamp, identity="marcus")
            wait_metric(d, "posta_http_responses_total", lambda v: v == 1, identity="marcus", code="2xx")
            assert value(moved, "posta_worker_report_timestamp_seconds", identity="arne") == stamp, moved
            assert value(moved, "posta_worker_up", identity="arne") == 1  # it is not known to be dead
            assert value(moved, "posta_http_responses_total", identity="arne", code="2xx") == 0
        finally:
            os.kill(arne, signal.SIGCONT)
        assert held.recv(65536).startswith(b"HTTP/1.1 200")
        held.close()
        samples = wait_metric(d, "posta_http_responses_total", lambda v: v == 1, identity="arne", code="2xx")
        assert value(samples, "posta_worker_report_timestamp_seconds", identity="arne") > stamp


@test
def reloads_and_rejected_reloads_are_counted():
    with Daemon([ARNE], config=METRICS) as d:
        samples = scrape(d)
        assert value(samples, "posta_reloads_total") == 0 and value(samples, "posta_reload_failures_total") == 0
        d.write_manifest([ARNE, MARCUS])
        assert "done" in d.reload().group(0)
        samples = wait_metric(d, "posta_worker_up", lambda v: v == 1, identity="marcus")
        assert value(samples, "posta_reloads_total") == 1 and value(samples, "posta_reload_failures_total") == 0
        assert value(samples, "posta_identities") == 2

        with open(d.manifest, "a") as f:
            f.write("[[identity]]\nslug = \"Bad Slug\"\n")
        assert "rejected" in d.reload().group(0)
        samples = scrape(d)
        assert value(samples, "posta_reloads_total") == 2 and value(samples, "posta_reload_failures_total") == 1
        assert value(samples, "posta_identities") == 2

        # The listener is bound at start: a new address waits for a restart.
        d.write_manifest([ARNE])
        d.write_config({"metrics_listen": "127.0.0.1:1"})
        mark = len(d.log())
        assert "done" in d.reload().group(0)
        d.wait_log(r"reload: metrics_listen changed in .*needs a restart", start=mark)
        samples = wait_metric(d, "posta_identities", lambda v: v == 1)
        assert value(samples, "posta_reloads_total") == 3 and value(samples, "posta_reload_failures_total") == 1
        assert ("posta_worker_up", (("identity", "marcus"),)) not in samples


if __name__ == "__main__":
    main()
