"""GET /api/events against the real daemon, with deliveries from a test
sender (peer.py): a live event shortly after the 202, resume after missed
events with exactly those events, stream.reset for an unknown or malformed
id, a client that stops reading dropped while another keeps receiving, an
open stream that survives a SIGHUP reload, and SIGTERM ending streams
cleanly."""
import json
import signal
import socket
import threading
import time

from peer import Peer
from posta import Daemon, test, main, wait_for

MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS_URL = MARCUS["url"]


class EventStream:
    """One SSE client on a raw socket. A reader thread parses events as they
    come and stamps each with its arrival time; `rcvbuf` (set before
    connecting) and `read=False` make a client that stops reading."""

    def __init__(self, daemon, token, last_event_id=None, query="", host="marcus.local", rcvbuf=None, read=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", daemon.port))
        request = f"GET /api/events{query} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        if last_event_id is not None:
            request += f"Last-Event-ID: {last_event_id}\r\n"
        request += "Accept: text/event-stream\r\n\r\n"
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed before the head: {self.buffer!r}"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()
        self.events = []     # dicts: id, event, data, at (time.monotonic())
        self.comments = []
        self.eof = False
        self.error = None
        self.lock = threading.Lock()
        self.thread = None
        if read:
            self.start_reading()

    def start_reading(self):
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        self._parse()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as exc:
                self.error = exc
                break
            if not chunk:
                break
            self.buffer += chunk
            self._parse()
        self.eof = True

    def _parse(self):
        while True:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                return
            block, self.buffer = self.buffer[:end].decode(), self.buffer[end + 2:]
            event = {"id": None, "event": "message", "data": [], "at": time.monotonic()}
            for line in block.split("\n"):
                if line.startswith(":"):
                    with self.lock:
                        self.comments.append(line[1:].strip())
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    event["data"].append(value)
                elif field in ("id", "event"):
                    event[field] = value
            if event["data"]:
                event["data"] = "\n".join(event["data"])
                with self.lock:
                    self.events.append(event)

    def wait_events(self, count, timeout=10.0):
        wait_for(lambda: len(self.events) >= count or self.eof, timeout, f"{count} events")
        with self.lock:
            assert len(self.events) >= count, f"stream ended after {len(self.events)} of {count} events"
            return list(self.events)

    def ids(self):
        with self.lock:
            return [int(e["id"]) for e in self.events]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def deliver(peer, daemon, **fields):
    env, reply = peer.deliver(daemon, MARCUS_URL, **fields)
    assert reply.status == 202, reply
    return env


@test
def events_need_the_owner_token():
    with Daemon([MARCUS]) as d:
        r = d.request("marcus.local", path="/api/events")
        assert r.status == 401, r
        assert r.headers["www-authenticate"].startswith("Bearer"), r
        r = d.request("marcus.local", path="/api/events", headers={"Authorization": "Bearer posta_wrong"})
        assert r.status == 401, r
        assert d.stop() == 0


@test
def a_live_event_arrives_within_100ms_of_the_202():
    with Daemon([MARCUS]) as d, Peer() as peer:
        stream = EventStream(d, d.token("marcus"))
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        assert "content-length" not in stream.headers
        wait_for(lambda: d.find_log(r"events: .* subscribed"), what="the subscription")
        for n in range(3):
            env = deliver(peer, d, subject=f"live {n}")
            accepted = time.monotonic()
            events = stream.wait_events(n + 1)
            event = events[n]
            assert event["event"] == "message.received", event
            message = json.loads(event["data"])
            assert message["id"] == env["id"] and message["from"] == peer.url, message
            assert message["subject"] == f"live {n}" and message["box"] == "inbox", message
            assert "\n" not in event["data"]
            assert event["at"] - accepted < 0.1, f"event came {event['at'] - accepted:.3f}s after the 202"
        assert stream.ids() == sorted(set(stream.ids())), stream.ids()
        stream.close()
        assert d.stop() == 0


@test
def resume_after_three_missed_events_returns_exactly_those_three():
    with Daemon([MARCUS]) as d, Peer() as peer:
        token = d.token("marcus")
        first = EventStream(d, token)
        wait_for(lambda: d.find_log(r"events: .* subscribed"), what="the subscription")
        deliver(peer, d, subject="seen")
        seen = first.wait_events(1)[0]
        first.close()

        missed = [deliver(peer, d, subject=f"missed {n}")["id"] for n in range(3)]
        # The header, then the query parameter (for clients that cannot set one).
        for how in ("header", "query"):
            if how == "header":
                resumed = EventStream(d, token, last_event_id=seen["id"])
            else:
                resumed = EventStream(d, token, query=f"?last_event_id={seen['id']}")
            events = resumed.wait_events(3)
            assert [json.loads(e["data"])["id"] for e in events] == missed, events
            assert resumed.ids() == [int(seen["id"]) + i for i in (1, 2, 3)], resumed.ids()
            # Then live, with no repeat of what was replayed: the next two
            # events are the next two deliveries, nothing before or between.
            live = [deliver(peer, d, subject=f"after resume {n}")["id"] for n in range(2)]
            events = resumed.wait_events(5)
            assert [json.loads(e["data"])["id"] for e in events] == missed + live, events
            missed = missed[2:] + live
            seen = events[1]
            resumed.close()
        assert d.stop() == 0


@test
def an_unknown_or_malformed_id_gets_stream_reset_then_live_events():
    with Daemon([MARCUS]) as d, Peer() as peer:
        token = d.token("marcus")
        deliver(peer, d)
        unknown = EventStream(d, token, last_event_id="999")
        malformed = EventStream(d, token, last_event_id="yesterday")
        for stream, reason in ((unknown, "unknown_id"), (malformed, "malformed_id")):
            reset = stream.wait_events(1)[0]
            assert reset["event"] == "stream.reset", reset
            assert json.loads(reset["data"]) == {"reason": reason}, reset
            assert reset["id"] == "1", reset  # the newest: resume from here
        env = deliver(peer, d)
        for stream in (unknown, malformed):
            events = stream.wait_events(2)
            assert len(events) == 2, events  # the kept event 1 is not replayed
            assert events[1]["event"] == "message.received" and events[1]["id"] == "2", events
            assert json.loads(events[1]["data"])["id"] == env["id"]
            stream.close()
        assert d.stop() == 0


@test
def a_client_that_stops_reading_is_dropped_while_another_keeps_receiving():
    deliveries = 400
    body = "x" * 16384
    with Daemon([MARCUS], args=["--rate-per-minute", "0"]) as d, Peer() as peer:
        token = d.token("marcus")
        slow = EventStream(d, token, rcvbuf=4096, read=False)
        fast = EventStream(d, token)
        wait_for(lambda: len([l for l in d.log() if "subscribed" in l]) == 2, what="both subscriptions")

        errors = []

        def send(part):
            try:
                for n in range(part, deliveries, 8):
                    deliver(peer, d, subject=f"bulk {n}", body=body)
            except Exception as exc:  # re-raised below
                errors.append(exc)

        senders = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(120)
        assert not errors, errors[0]

        d.wait_log(r"events: dropped 127\.0\.0\.1:\d+: \d+ bytes unsent, over the bound of 1048576",
                   what="the slow subscriber dropped")
        fast.wait_events(deliveries, timeout=30)
        assert fast.ids() == list(range(1, deliveries + 1)), "the fast subscriber missed or repeated events"
        assert not fast.eof

        # The slow one finds what the kernel held, then the end; it resumes
        # with the last id it got.
        slow.sock.settimeout(10)
        slow.start_reading()
        wait_for(lambda: slow.eof, 15, "the dropped stream to end")
        got = slow.ids()
        assert got == list(range(1, len(got) + 1)) and len(got) < deliveries, got[-5:]
        resumed = EventStream(d, token, last_event_id=got[-1] if got else 0)
        resumed.wait_events(deliveries - len(got), timeout=30)
        assert resumed.ids() == list(range(len(got) + 1, deliveries + 1))
        for s in (slow, fast, resumed):
            s.close()
        assert d.stop() == 0


@test
def an_open_stream_on_an_unchanged_identity_survives_a_reload():
    with Daemon([MARCUS, ARNE]) as d, Peer() as peer:
        pid = d.worker_pid("marcus")
        stream = EventStream(d, d.token("marcus"))
        wait_for(lambda: d.find_log(r"events: .* subscribed"), what="the subscription")
        mark = len(d.log())
        d.write_manifest([MARCUS, dict(ARNE, name="Arne Again")])
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log(r"reload done", start=mark)
        d.worker_pid("arne", start=mark)
        env = deliver(peer, d)
        event = stream.wait_events(1)[0]
        assert json.loads(event["data"])["id"] == env["id"]
        assert not stream.eof
        assert d.worker_pid("marcus") == pid
        stream.close()
        assert d.stop() == 0


@test
def sigterm_ends_streams_cleanly_and_the_daemon_exits_0():
    with Daemon([MARCUS]) as d, Peer() as peer:
        token = d.token("marcus")
        streams = [EventStream(d, token) for _ in range(3)]
        wait_for(lambda: len([l for l in d.log() if "subscribed" in l]) == 3, what="three subscriptions")
        deliver(peer, d)
        for s in streams:
            s.wait_events(1)
        started = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - started < 5, "stopping waited for the streams"
        for s in streams:
            wait_for(lambda: s.eof, 5, "the stream's end")
            assert s.error is None, f"the stream ended with {s.error!r}, not a clean EOF"
            assert s.buffer == b"", f"a partial event before the end: {s.buffer!r}"
            assert s.ids() == [1]
            s.close()


if __name__ == "__main__":
    main()
