"""Bounds a worker keeps whatever its owner or a sender does (issue 13): a
queue of 1 MB deliveries to unreachable recipients does not grow the
worker's memory with the queue."""
import json
import os
import socket

from posta import Daemon, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
HOST = "arne.local"
FAST = {"delivery_retry_base": "200ms", "delivery_retry_max": "1s"}
# The worker's peak RSS with 100 queued recipients of a 1 MB message: 28 MiB
# here. Before the outbox read a body per attempt, every scan of the queue
# copied each queued message's body: 100 MB a scan, 113 MiB peak (~321 MiB
# for 3 such messages). A sanitizer build's baseline is larger (shadow
# memory): there the bound is on the growth after the message was queued
# (12 MiB here, 96 MiB before), with ASan's quarantine of freed memory off.
OUTBOX_PEAK_RSS_MIB = 64
OUTBOX_GROWTH_MIB = 40
SANITIZED = "ASAN_OPTIONS" in os.environ


def refused_port():
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(d, token, method, path, body=None, timeout=30.0):
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return d.request(HOST, method, path, headers, data, timeout=timeout)


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@test
def a_hundred_queued_recipients_of_a_1_mb_message_keep_the_worker_small():
    port = refused_port()
    # 100 loopback addresses: distinct recipients and destination hosts.
    recipients = [f"http://127.0.0.{i}:{port}" for i in range(1, 101)]
    with Daemon([ARNE], config=dict(FAST, max_body_bytes=2 * 1048576), autostart=False) as d:
        saved = os.environ.get("ASAN_OPTIONS")
        if SANITIZED:
            os.environ["ASAN_OPTIONS"] = saved + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
        try:
            d.start()
        finally:
            if SANITIZED:
                os.environ["ASAN_OPTIONS"] = saved
        token = d.token("arne")
        pid = d.worker_pid("arne")
        reply = api(d, token, "POST", "/api/messages", {"to": recipients, "subject": "big", "body": "x" * 1_000_000})
        assert reply.status == 202, reply
        queued = vm_hwm_mib(pid)

        # Every recipient retried: the outbox scanned its queue after each
        # failed attempt, hundreds of times.
        def retried():
            found = api(d, token, "GET", "/api/deliveries?state=queued").json()["deliveries"]
            return found if len(found) == 100 and all(x["attempts"] >= 2 for x in found) else None
        found = wait_for(retried, timeout=90, what="every recipient attempted twice")
        assert all(x["last_error"] for x in found), found[:3]
        peak = vm_hwm_mib(pid)
        bound = queued + OUTBOX_GROWTH_MIB if SANITIZED else OUTBOX_PEAK_RSS_MIB
        assert peak < bound, f"worker peak RSS {peak:.1f} MiB ({queued:.1f} once queued), bound {bound:.0f} MiB"


if __name__ == "__main__":
    main()
