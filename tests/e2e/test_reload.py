"""SIGHUP reloads that change what the supervisor and its running workers run
on: the head bounds of connections accepted before and after, the connections
one address may hold, and identities changed twice in a row."""
import os
import re
import signal
import socket
import threading
import time

from posta import (Daemon, read_until_close, status_of, test, main, wait_for,
                   wait_read_by_server)

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}


def head(host, size):
    """A GET of arne's identity document whose head is `size` bytes long."""
    start = b"GET /.well-known/posta HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\nX-Pad: "
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def in_two_pieces(d, data, first=200):
    """Sends `data` in two pieces, the first read by the supervisor on its own
    (the slow path), and returns the status of the answer."""
    with d.connect(timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(data[:first])
        wait_read_by_server(s, d.port)
        s.sendall(data[first:])
        return status_of(read_until_close(s))


def second_head_status(d, second):
    """Sends a small keep-alive request to arne and then `second` on the same
    connection; returns the status of the second answer. The supervisor peeks
    only the first head: the second one is read by arne's worker alone."""
    first = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n"
    with d.connect(timeout=10) as s:
        s.sendall(first + second)
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", read_until_close(s))
    assert len(statuses) == 2 and statuses[0] == b"200", statuses
    return int(statuses[1])


def reload_keeping_arne(d, pid, config):
    """Writes `config`, reloads, and checks that arne's worker `pid` took
    the new max_head_bytes itself: no other worker was started for arne."""
    d.write_config(config)
    mark = len(d.log())
    assert "done" in d.reload().group(0)
    d.wait_log(rf"policy updated: .*max_head_bytes {config['max_head_bytes']}\b", start=mark,
               what="arne's worker to take the new policy")
    assert d.find_log(r"arne: worker \d+ (started|ready)", start=mark) is None, d.log()[mark:]
    assert d.worker_pid("arne") == pid


@test
def raising_max_head_bytes_by_reload_bounds_split_heads_by_the_new_value():
    with Daemon([ARNE], config={"max_head_bytes": 1024}) as d:
        pid = d.worker_pid("arne")
        assert in_two_pieces(d, head(b"arne.local", 1000)) == 200
        assert in_two_pieces(d, head(b"arne.local", 3000)) == 431
        assert second_head_status(d, head(b"arne.local", 3000)) == 431

        # The running worker takes the new bound from the reload's policy
        # message: it is not restarted.
        reload_keeping_arne(d, pid, {"max_head_bytes": 65536})
        # A head many times the old bound, in two pieces: the old peek buffer
        # would have been overrun here; the worker reads it whole.
        assert in_two_pieces(d, head(b"arne.local", 60000)) == 200
        assert in_two_pieces(d, head(b"nobody.local", 60000)) == 404
        assert in_two_pieces(d, head(b"arne.local", 70000)) == 431
        assert status_of(d.raw(head(b"arne.local", 60000))) == 200
        assert second_head_status(d, head(b"arne.local", 60000)) == 200
        assert second_head_status(d, head(b"arne.local", 70000)) == 431
        assert d.proc.poll() is None, "the supervisor died"
        assert d.request("arne.local").status == 200
        assert d.worker_pid("arne") == pid
        assert d.stop() == 0


@test
def lowering_max_head_bytes_by_reload_bounds_the_running_workers_heads():
    with Daemon([ARNE], config={"max_head_bytes": 65536}) as d:
        pid = d.worker_pid("arne")
        assert second_head_status(d, head(b"arne.local", 2000)) == 200
        reload_keeping_arne(d, pid, {"max_head_bytes": 1024})
        # Only the worker reads a second head: the supervisor's own bound
        # cannot answer for it.
        assert second_head_status(d, head(b"arne.local", 2000)) == 431
        assert second_head_status(d, head(b"arne.local", 1000)) == 200
        assert d.proc.poll() is None, "the supervisor died"
        assert d.stop() == 0


@test
def lowering_max_head_bytes_by_reload_keeps_heads_already_arriving_whole():
    with Daemon([ARNE], config={"max_head_bytes": 65536}) as d:
        big = head(b"arne.local", 50000)
        with d.connect(timeout=10) as early:
            early.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            early.sendall(big[:8000])
            wait_read_by_server(early, d.port)

            d.write_config({"max_head_bytes": 1024})
            assert "done" in d.reload().group(0)

            # Accepted under the old bound, this head keeps it; the rest of it
            # is far more than the new bound.
            early.sendall(big[8000:])
            assert status_of(read_until_close(early)) == 200

        assert in_two_pieces(d, head(b"arne.local", 2000)) == 431
        assert in_two_pieces(d, head(b"arne.local", 1000)) == 200
        assert in_two_pieces(d, head(b"nobody.local", 1000)) == 404
        assert status_of(d.raw(head(b"arne.local", 2000))) == 431
        assert d.proc.poll() is None, "the supervisor died"
        assert d.stop() == 0


@test
def raising_max_connections_per_address_by_reload_reaches_the_running_worker():
    with Daemon([ARNE], config={"max_connections_per_address": 1}) as d:
        pid = d.worker_pid("arne")
        ask = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n"
        with d.connect(timeout=10) as held:
            # An open keep-alive connection: the one this address may have.
            held.sendall(ask)
            assert held.recv(65536).startswith(b"HTTP/1.1 200 ")
            assert status_of(d.raw(ask)) == 429
            d.write_config({"max_connections_per_address": 2})
            mark = len(d.log())
            assert "done" in d.reload().group(0)
            d.wait_log(r"policy updated", start=mark, what="arne's worker to take the new policy")
            assert status_of(d.raw(ask.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))) == 200
        assert d.worker_pid("arne") == pid
        assert d.find_log(r"arne: worker \d+ (started|ready)", start=mark) is None
        assert d.stop() == 0


def holders(path):
    """Pids of every process on the machine with `path` open, from /proc/*/fd."""
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                        found.add(int(pid))
                        break
                except OSError:
                    pass
        except OSError:
            pass
    return found


class HolderWatch:
    """Polls, from a thread, which processes hold `path` open; remembers the
    largest set seen at once."""

    def __init__(self, path):
        self.path = path
        self.most = set()
        self.scans = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping:
            now = holders(self.path)
            self.scans += 1
            if len(now) > len(self.most):
                self.most = now

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join()
        return False


def reload_twice(d, first, second):
    """Two reloads 50 ms apart, each changing arne's name."""
    mark = len(d.log())
    d.write_manifest([dict(ARNE, name=first), MARCUS])
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.05)  # the interval under test, not a synchronisation
    d.write_manifest([dict(ARNE, name=second), MARCUS])
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: sum(1 for line in d.log()[mark:] if "reload done" in line) == 2,
             what="both reloads to finish")
    return mark


def serves_name(d, name):
    r = d.request("arne.local")
    return r.status == 200 and r.json()["name"] == name


@test
def two_quick_reloads_never_run_two_workers_on_one_identitys_files():
    with Daemon([ARNE, MARCUS], config={"shutdown_timeout": "5s"}) as d:
        db = os.path.join(d.state_dir, "arne", "inbox.db")
        old = d.worker_pid("arne")
        assert holders(db) == {old}
        # A request in flight keeps the first worker busy while it stops.
        busy = d.connect(timeout=10)
        busy.sendall(b"POST /nothing HTTP/1.1\r\nHost: arne.local\r\nContent-Length: 5\r\n\r\nab")
        wait_read_by_server(busy, d.port)
        with HolderWatch(db) as watch:
            mark = reload_twice(d, "Arne 2", "Arne 3")
            # The newest worker waits for the busy one (both reloads are done,
            # so it would have been started by now); finishing the request
            # lets the busy one exit.
            assert d.find_log(r"arne: worker \d+ started", start=mark) is None, d.log()[mark:]
            busy.sendall(b"cde")
            assert status_of(read_until_close(busy)) == 404
            busy.close()
            new = d.worker_pid("arne", start=mark)
            wait_for(lambda: serves_name(d, "Arne 3"), what="arne to serve its newest name")
            for i in range(10):
                reload_twice(d, f"Arne {i}a", f"Arne {i}b")
            wait_for(lambda: serves_name(d, "Arne 9b"), what="arne to serve its newest name")
        assert new != old
        assert len(watch.most) == 1, f"{sorted(watch.most)} held {db} at once ({watch.scans} scans)"
        assert watch.scans > 10, watch.scans
        assert d.stop() == 0


@test
def a_reload_wakes_a_running_worker_only_to_tell_it_what_changed():
    """A reload that leaves arne's policy as it was sends arne's (http)
    worker nothing, so a reload of many identities does not wake them all;
    one that changes a key the worker applies reaches the same worker."""
    with Daemon([ARNE, MARCUS]) as d:
        pid = d.worker_pid("arne")
        for _ in range(3):
            mark = len(d.log())
            assert "done" in d.reload().group(0)
            assert d.request("arne.local").status == 200  # arne's worker has read its channel
            assert d.find_log(r"arne\[\d+\]: policy updated", start=mark) is None, d.log()[mark:]
        d.write_config({"trusted_proxies": ["127.0.0.2/32"]})
        mark = len(d.log())
        assert "done" in d.reload().group(0)
        d.wait_log(rf"arne\[{pid}\]: policy updated", start=mark)
        d.wait_log(r"marcus\[\d+\]: policy updated", start=mark)
        assert d.worker_pid("arne") == pid
        assert d.stop() == 0


if __name__ == "__main__":
    main()
