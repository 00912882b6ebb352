"""Moving an identity between two daemons, as the README's "Past one machine"
and posta-server(8), "BACKUP AND RESTORE", say: remove it from A's manifest
and reload A, wait until A's worker for it has exited, `backup` on A,
`restore` on B, add it to B's manifest and reload B, switch the front.

The identity's URL stays the same across the move: it names the port of a
front (Debian's haproxy in mode http, routing by Host through a map, as an
operator would run it), and the move switches the map's entry on haproxy's
runtime API (`set map`), the way a front is switched without a restart.
Names in /etc/hosts could not be switched by a test without disturbing
every other test of the machine; a front can.

Checked: every delivery A acknowledged (202) is in B's inbox; a delivery the
identity had queued on A for a recipient that was down is delivered by B once
the recipient comes up, signed (the recipient checks the signature against
the identity's document, fetched through the same URL, now B); and a sender
that delivers during the window when A no longer serves the identity and B
does not yet gets 404 from A's supervisor and retries, so the message reaches
B instead of being lost.

The names are loopback only: mover.local, sender.local and rcpt.local in
/etc/hosts."""
import http.client
import json
import os
import socket
import subprocess
import tempfile

from posta import BINARY, Daemon, Haproxy, OwnerApi, free_port, loopback_names, test, main, wait_for

FAST = {"delivery_retry_base": "200ms", "delivery_retry_max": "1s"}


class Api(OwnerApi):
    """The owner API of `ident` on daemon `d` itself (not through the
    front), with a token minted by that daemon's worker."""

    def __init__(self, d, ident):
        super().__init__(d.token(ident["slug"]), lambda: http.client.HTTPConnection("127.0.0.1", d.port, timeout=10),
                         host=ident["url"].split("://", 1)[1])

    def send(self, to, subject):
        return super().send(to, subject, "moving")

    def delivery(self, message_id):
        found = self.deliveries_of(message_id)
        assert len(found) == 1, found
        return found[0]

    def wait_delivery(self, message_id, check, what):
        return wait_for(lambda: (lambda x: x if check(x) else None)(self.delivery(message_id)), timeout=30,
                        what=f"{self.host}'s delivery {message_id} {what}")

    def inbox(self):
        return {m["id"]: m for m in super().inbox()}


def front(directory, port, a_port, b_port):
    """haproxy in mode http on `port`, as the README's plain half: each
    request goes to the daemon its Host's name maps to, shard_a (A) or
    shard_b (B), never on a connection opened for another Host. The map is
    switched at run time through the admin socket."""
    shard_map = os.path.join(directory, "posta-shards.map")
    with open(shard_map, "w") as f:
        f.write("mover.local shard_a\nsender.local shard_b\n")
    admin = os.path.join(directory, "haproxy.sock")
    proxy = Haproxy(directory, "http", f"""global
    stats socket {admin} level admin
frontend posta
    bind 127.0.0.1:{{port}}
    use_backend %[req.hdr(host),field(1,:),lower,map({shard_map})]
backend shard_a
    http-reuse never
    server a 127.0.0.1:{a_port}
backend shard_b
    http-reuse never
    server b 127.0.0.1:{b_port}
""", port)
    proxy.map, proxy.admin = shard_map, admin
    return proxy


def set_map(proxy, name, backend):
    """`set map` on haproxy's runtime API, as an operator switches a front."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(proxy.admin)
        s.sendall(f"set map {proxy.map} {name} {backend}\n".encode())
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.strip() == b"", answer


def cli(*args):
    r = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"posta-server {' '.join(args)} failed ({r.returncode}): {r.stderr}"
    return r


def status(d):
    return json.loads(cli("status", "--json", "--config", d.config_path).stdout)


def state_of(d, slug):
    """`slug`'s state in `status --json`, None when `d` does not serve it."""
    return next((x["state"] for x in status(d)["identities"] if x["slug"] == slug), None)


@test
def a_move_between_two_daemons_keeps_every_message_and_resumes_a_queued_delivery():
    if not loopback_names(["mover.local", "sender.local", "rcpt.local"]):
        print("skipped: needs root to add mover.local, sender.local and rcpt.local to /etc/hosts")
        return
    front_port, rcpt_port = free_port(), free_port()
    mover = {"slug": "mover", "url": f"http://mover.local:{front_port}", "name": "Mover"}
    sender = {"slug": "sender", "url": f"http://sender.local:{front_port}", "name": "Sender"}
    rcpt = {"slug": "rcpt", "url": f"http://rcpt.local:{rcpt_port}", "name": "Recipient"}
    with Daemon([mover], config=FAST) as a, Daemon([sender], config=FAST) as b, \
            Daemon([rcpt], config=FAST, args=["--listen", f"127.0.0.1:{rcpt_port}"], autostart=False) as c:
        proxy = front(a.dir, front_port, a.port, b.port)
        try:
            # On A: mover is sent deliveries, each acknowledged with 202, and
            # queues one of its own for rcpt, whose machine is down (nothing
            # listens on its port: connection refused).
            from_sender = Api(b, sender)
            on_a = Api(a, mover)
            acked = [from_sender.send(mover["url"], f"before the move {i}") for i in range(3)]
            for message_id in acked:
                found = from_sender.wait_delivery(message_id, lambda x: x["state"] == "delivered", "delivered")
                assert found["last_status"] == 202, found
            assert set(on_a.inbox()) == set(acked)
            queued = on_a.send(rcpt["url"], "queued on A")
            found = on_a.wait_delivery(queued, lambda x: x["attempts"] >= 1, "tried")
            assert found["state"] == "queued" and found["last_status"] is None, found
            pid = a.worker_pid("mover")

            # The move. On A: remove mover from the manifest and reload; its
            # worker finishes what it was doing and exits.
            mark = len(a.log())
            a.write_manifest([])
            assert "done" in a.reload().group(0)
            wait_for(lambda: status(a)["draining"] == 0, what="A's worker for mover to exit")
            assert a.find_log(rf"mover: worker {pid} exited with status 0", start=mark), a.log()[mark:]
            assert not os.path.exists(f"/proc/{pid}")

            # The window: A's supervisor answers 404 for mover, B does not
            # serve it yet. A sender retries the 404 instead of failing.
            assert a.request(mover["url"].split("://")[1]).status == 404
            in_window = from_sender.send(mover["url"], "during the move")
            found = from_sender.wait_delivery(in_window, lambda x: x["last_status"] is not None, "answered")
            assert found["state"] == "queued" and found["last_status"] == 404, found

            # backup on A, restore on B, add to B's manifest and reload.
            copy = os.path.join(tempfile.mkdtemp(prefix="posta-move-", dir=a.dir), "mover")
            cli("backup", "mover", copy, "--config", a.config_path)
            cli("restore", "mover", copy, "--config", b.config_path)
            b.write_manifest([sender, mover])
            assert "done" in b.reload().group(0)
            wait_for(lambda: state_of(b, "mover") == "ready", what="B to serve mover")
            assert state_of(b, "sender") == "ready" and state_of(a, "mover") is None
            # Then the front sends mover's traffic to B: its URL is unchanged.
            set_map(proxy, "mover.local", "shard_b")

            # On B, with a token B's worker minted: every message A
            # acknowledged is there, and the one sent in the window arrives.
            on_b = Api(b, mover)
            assert set(acked) <= set(on_b.inbox())
            found = from_sender.wait_delivery(in_window, lambda x: x["state"] == "delivered", "delivered")
            assert found["last_status"] == 202, found
            assert set(on_b.inbox()) == set(acked) | {in_window}

            # The delivery queued on A resumes on B once rcpt comes up; rcpt
            # checked its signature against mover's document, fetched from
            # mover's URL: from B, since A answers 404 for it.
            assert on_b.delivery(queued)["state"] == "queued"
            c.start()
            found = on_b.wait_delivery(queued, lambda x: x["state"] == "delivered", "delivered")
            assert found["last_status"] == 202, found
            got = Api(c, rcpt).inbox()
            assert list(got) == [queued] and got[queued]["from"] == mover["url"], got
            assert a.stop() == 0 and b.stop() == 0 and c.stop() == 0
        finally:
            proxy.close()


if __name__ == "__main__":
    main()
