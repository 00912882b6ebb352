"""A thousand clients trickling their heads cost the supervisor no CPU and
do not keep anyone else from being served."""
import resource
import socket
import time

from posta import Daemon, cpu_ticks, read_until_close, status_of, test, main, wait_read_by_server

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
CLIENTS = 1000
HEAD = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4 * CLIENTS)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@test
def a_thousand_trickling_clients_use_no_supervisor_cpu():
    raise_fd_limit()
    # The thousand clients share one loopback address; they stand for a
    # thousand addresses, so no per-address cap.
    with Daemon([ARNE], config={"head_timeout": "60s", "max_connections_per_address": 1048576}) as d:
        clients = []
        try:
            for _ in range(CLIENTS):
                s = d.connect()
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(HEAD[:20])
                clients.append(s)

            # Idle slow clients: nothing may run in the supervisor. A process
            # that spins on readable sockets burns ~100 ticks a second.
            ticks = cpu_ticks(d.proc.pid)
            deadline = time.monotonic() + 2.0
            served = 0
            while time.monotonic() < deadline:
                r = d.request("arne.local")
                assert r.status == 200, r
                served += 1
            idle_ticks = cpu_ticks(d.proc.pid) - ticks
            # What the supervisor did in those 2 s was routing `served`
            # ordinary requests; the slow clients added nothing measurable.
            assert served > 20, served
            assert idle_ticks <= 10 + served // 50, (idle_ticks, served)

            # One more byte from each: a wake-up each, no spinning, over the
            # half second after the bytes were sent (the window under test),
            # and not before the supervisor has read all of them.
            ticks = cpu_ticks(d.proc.pid)
            window = time.monotonic() + 0.5
            for s in clients:
                s.sendall(HEAD[20:21])
            wait_read_by_server(clients, d.port, what="the supervisor to read each client's byte")
            time.sleep(max(0.0, window - time.monotonic()))
            assert cpu_ticks(d.proc.pid) - ticks <= 25, "a trickle round cost too much"

            # Then the rest: every one of them is routed with its prefix.
            for s in clients:
                s.sendall(HEAD[21:])
            ok = 0
            for s in clients:
                raw = read_until_close(s)
                if raw and status_of(raw) == 200:
                    ok += 1
            assert ok == CLIENTS, f"{ok} of {CLIENTS} slow clients were served"
        finally:
            for s in clients:
                s.close()
        assert d.stop() == 0


if __name__ == "__main__":
    main()
