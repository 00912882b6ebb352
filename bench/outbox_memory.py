#!/usr/bin/env python3
"""posta-server bench, scenario 7: the outbox's memory and CPU with a long
queue (bench/README.md). One identity sends 1 MB messages to 1, 100 and
1,000 recipients that refuse connections (127.0.x.y on a port where nothing
listens: loopback only), with the fast retry schedule of the e2e tests, so
the outbox scans its queue after every failed attempt. For each size it
reports the worker's peak RSS (VmHWM), its CPU seconds from the first POST
to the end of the window, and the median latency of GET
/api/deliveries?state=delivered during the window.

Runs against $POSTA_SERVER, or build-bench/posta-server (bench/run builds
it). `BENCH_OUTBOX_WINDOW` sets the seconds each size runs (default 20;
BENCH_QUICK=1: 6), `BENCH_OUTBOX_SIZES` the sizes (default 1,100,1000).
Writes bench/results/outbox-<timestamp>.json. Standard library only; the
daemon runs through the e2e harness (tests/e2e/posta.py) and is stopped
when each size ends, fails or is interrupted.
"""
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("BENCH_BUILD_DIR", ROOT / "build-bench"))
os.environ.setdefault("POSTA_SERVER", str(BUILD / "posta-server"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from posta import Daemon, cpu_ticks  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
WINDOW = float(os.environ.get("BENCH_OUTBOX_WINDOW", "6" if QUICK else "20"))
SIZES = [int(n) for n in os.environ.get("BENCH_OUTBOX_SIZES", "1,100,1000").split(",")]
BODY_BYTES = 1_000_000
PER_MESSAGE = 100  # the API's limit of recipients per message
CLK_TCK = os.sysconf("SC_CLK_TCK")
REQUEST_TIMEOUT = 30.0


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def recipients(count, port):
    """`count` distinct identity URLs on loopback addresses 127.0.x.y."""
    return [f"http://127.0.{1 + i // 250}.{1 + i % 250}:{port}" for i in range(count)]


def run_size(count):
    """One size: the row of figures. A request that times out (the old
    outbox could take minutes to answer) ends the window early; the row
    says so in `note`."""
    ident = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
    config = {"delivery_retry_base": "200ms", "delivery_retry_max": "1s", "max_body_bytes": 2 * 1048576}
    row = {"recipients": count, "note": ""}
    with Daemon([ident], config=config) as d:
        token = d.token("arne")
        pid = d.worker_pid("arne")
        auth = {"Authorization": f"Bearer {token}"}
        to = recipients(count, refused_port())
        body = "x" * BODY_BYTES
        ticks0 = cpu_ticks(pid)
        started = time.monotonic()
        latencies = []
        try:
            for start in range(0, count, PER_MESSAGE):
                data = json.dumps({"to": to[start:start + PER_MESSAGE], "subject": "big", "body": body}).encode()
                reply = d.request("arne.local", "POST", "/api/messages",
                                  dict(auth, **{"Content-Type": "application/json"}), data, timeout=REQUEST_TIMEOUT)
                assert reply.status == 202, reply
            while time.monotonic() - started < WINDOW:
                t = time.monotonic()
                reply = d.request("arne.local", "GET", "/api/deliveries?state=delivered", auth,
                                  timeout=REQUEST_TIMEOUT)
                assert reply.status == 200, reply
                latencies.append(time.monotonic() - t)
                time.sleep(0.2)
        except TimeoutError:
            row["note"] = f"an API request took over {REQUEST_TIMEOUT:.0f} s"
        elapsed = time.monotonic() - started
        row.update({"peak_rss_mib": round(vm_hwm_kib(pid) / 1024, 1),
                    "cpu_s": round((cpu_ticks(pid) - ticks0) / CLK_TCK, 2), "window_s": round(elapsed, 1),
                    "api_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None})
        d.stop(timeout=60)
    return row


def print_row(r):
    print(f"{r['recipients']:>10}  {r['peak_rss_mib']:>12}  {r['cpu_s']:>6}  {r['window_s']:>8}  "
          f"{str(r['api_p50_ms']):>10}  {r['note']}", flush=True)


def main():
    log(f"outbox memory: {os.environ['POSTA_SERVER']}, sizes {SIZES}, {WINDOW:.0f} s each")
    rows = []
    print(f"{'recipients':>10}  {'peak RSS MiB':>12}  {'CPU s':>6}  {'window s':>8}  {'API p50 ms':>10}", flush=True)
    for count in SIZES:
        log(f"{count} queued recipients of a 1 MB message")
        rows.append(run_size(count))
        print_row(rows[-1])
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"outbox-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"binary": os.environ["POSTA_SERVER"], "load": os.getloadavg(), "rows": rows},
                              indent=2) + "\n")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
