"""Past one machine, as the README's section sets it up: Debian's haproxy in
mode tcp routes each TLS connection by its SNI (req.ssl_sni through a map
file) to one of two posta-servers, each serving one identity with its own
certificate, and says who the client is with send-proxy-v2. The two
identities exchange a message through it: each worker's outbox delivers to
the other's https URL on haproxy's port, trusting the test CA through
outbound_ca_file, and each inbox fetches the sender's document the same way
to check the signature.

The names are loopback only: a.local and b.local in /etc/hosts."""
import http.client
import os
import re
import ssl

from posta import Daemon, Haproxy, OwnerApi, free_port, loopback_names, test, main, wait_for
from tls_setup import Pki, start

FAST = {"delivery_retry_base": "200ms", "delivery_retry_max": "1s"}


def shards(directory, port, a_port, b_port):
    """haproxy in mode tcp on `port` in front of the TLS listeners on `a_port`
    (a.local's machine) and `b_port` (b.local's), as in the README."""
    shard_map = os.path.join(directory, "posta-shards.map")
    with open(shard_map, "w") as f:
        f.write("a.local shard_a\nb.local shard_b\n")
    return Haproxy(directory, "tcp", f"""frontend posta_tls
    bind 127.0.0.1:{{port}}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend %[req.ssl_sni,lower,map({shard_map})]
backend shard_a
    server a 127.0.0.1:{a_port} send-proxy-v2
backend shard_b
    server b 127.0.0.1:{b_port} send-proxy-v2
""", port)


class Api(OwnerApi):
    """The owner API of the identity at `host`, over TLS through the front."""

    def __init__(self, daemon, pki, host, port):
        context = ssl.create_default_context(cafile=pki.ca)
        super().__init__(daemon.token(host.split(".")[0]),
                         lambda: http.client.HTTPSConnection(host, port, context=context, timeout=10))
        self.name = host

    def send(self, to, subject):
        return super().send(to, subject, "via haproxy")

    def delivered(self, message_id):
        def check():
            found = self.deliveries_of(message_id)
            return found[0] if found and found[0]["state"] == "delivered" else None
        return wait_for(check, timeout=30, what=f"{self.name}'s delivery {message_id}")


@test
def two_machines_behind_haproxy_in_mode_tcp_exchange_a_message():
    if not loopback_names(["a.local", "b.local"]):
        print("skipped: needs root to add a.local and b.local to /etc/hosts")
        return
    front_port = free_port()
    a = {"slug": "a", "url": f"https://a.local:{front_port}", "name": "A"}
    b = {"slug": "b", "url": f"https://b.local:{front_port}", "name": "B"}
    machines = [Daemon([ident], args=["--listen", "https://127.0.0.1:0"], autostart=False) for ident in (a, b)]
    pki = Pki(machines[0].dir)
    for d, ident in zip(machines, (a, b)):
        pki.install(d, ident["slug"], f"{ident['slug']}.local")
        d.write_config(dict(FAST, trusted_proxies=["127.0.0.1/32"], outbound_ca_file=pki.ca))
    with start(machines[0]) as da, start(machines[1]) as db:
        front = shards(da.dir, front_port, da.tls_port, db.tls_port)
        try:
            # The front really is in the way: its port is no posta listener's.
            assert front.port not in (da.port, da.tls_port, db.port, db.tls_port)
            api_a, api_b = Api(da, pki, "a.local", front.port), Api(db, pki, "b.local", front.port)
            to_b = api_a.send(b["url"], "from a")
            found = api_a.delivered(to_b)
            assert found["to"] == b["url"] and found["last_status"] in (200, 202), found
            to_a = api_b.send(a["url"], "from b")
            api_b.delivered(to_a)

            # Each inbox checked the other's signature against its document,
            # fetched through the front too, and stored the message as from it.
            assert [(m["id"], m["from"], m["subject"]) for m in api_b.inbox()] == [(to_b, a["url"], "from a")]
            assert [(m["id"], m["from"], m["subject"]) for m in api_a.inbox()] == [(to_a, b["url"], "from b")]

            # The client b's inbox logged is the one haproxy's PROXY header
            # named: the address and port of a's worker's connection to the
            # front, as haproxy logged it, not haproxy's own connection to b.
            accepted = db.wait_log(rf"b\[\d+\]: inbox: {re.escape(to_b)} from {re.escape(a['url'])} "
                                   rf"\((127\.0\.0\.1:\d+)\): accepted")
            client = accepted.group(1)
            routed = wait_for(lambda: [line for line in front.lines()
                                       if line.startswith(client + " ") and " shard_b/b " in line],
                              what=f"haproxy's log line for {client}")
            assert len(routed) == 1, routed
            # And a's side the other way round.
            accepted = da.wait_log(rf"a\[\d+\]: inbox: {re.escape(to_a)} from .* \((127\.0\.0\.1:\d+)\): accepted")
            assert any(line.startswith(accepted.group(1) + " ") and " shard_a/a " in line for line in front.lines()), \
                (accepted.group(0), front.lines())
        finally:
            front.close()


if __name__ == "__main__":
    main()
