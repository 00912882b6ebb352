"""TLS listeners: the supervisor routes by the ClientHello's SNI without
speaking TLS, and each identity's own worker terminates TLS with its own
certificate, made here with a test CA by the `openssl` command."""
import os
import re
import signal
import socket
import ssl
import subprocess
import time

from tls_setup import client_context, start, tls_connect, tls_daemon
from posta import Daemon, memory_holds, read_until_close, test, main, wait_for

ARNE = {"slug": "arne", "url": "https://arne.local", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "https://marcus.local", "name": "Marcus"}
PLAIN = {"slug": "plain", "url": "http://plain.local:8080", "name": "Plain"}


def redirected(d, host):
    """Whether a plain-HTTP request for the https identity at `host` reached
    its worker, which answers 308 to its https URL (test_proxy.py has more)."""
    r = d.request(host)
    assert r.status == 308 and r.headers["location"] == f"https://{host}/.well-known/posta", r
    return True


def http_over(sock, host, path="/.well-known/posta"):
    """One keep-alive GET on an open socket; returns (status, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    return status, body


def handshake_alert(d, pki, server_name):
    """Connects with `server_name` (None: no SNI); returns the SSLError text."""
    try:
        s = tls_connect(d, pki, server_name, check_hostname=False)
    except ssl.SSLError as e:
        return str(e)
    s.close()
    raise AssertionError(f"a handshake with SNI {server_name!r} succeeded")


@test
def both_identities_over_tls_on_one_port_each_with_its_own_certificate():
    d, pki, installed = tls_daemon([ARNE, MARCUS], ("arne", "marcus"))
    arne_der, _ = installed["arne"]
    marcus_der, _ = installed["marcus"]
    with start(d):
        for slug, host, der in (("arne", "arne.local", arne_der), ("marcus", "marcus.local", marcus_der)):
            for maximum in (None, ssl.TLSVersion.TLSv1_2):
                with tls_connect(d, pki, host, maximum) as s:
                    assert s.getpeercert(binary_form=True) == der, f"{host} got another certificate"
                    assert s.selected_alpn_protocol() == "http/1.1"
                    assert s.version() == ("TLSv1.2" if maximum else "TLSv1.3"), s.version()
                    for _ in range(2):  # keep-alive
                        status, body = http_over(s, host)
                        assert status == 200, (status, body)
                        assert f'"url":"https://{host}"'.encode() in body, body
        # Plain HTTP on the other listener still reaches their workers,
        # which send it to https.
        assert redirected(d, "arne.local")
        assert d.stop() == 0


@test
def missing_or_unknown_sni_gets_unrecognized_name_and_non_tls_a_close():
    d, pki, _ = tls_daemon([ARNE, PLAIN], ("arne",))
    with start(d):
        for name in (None, "nobody.local", "plain.local"):
            error = handshake_alert(d, pki, name)
            assert "UNRECOGNIZED_NAME" in error.upper(), (name, error)
        # An HTTP request on the TLS listener: closed without a word.
        with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: arne.local\r\n\r\n")
            assert read_until_close(s) == b""
        # A ClientHello trickling in, 50 bytes at a time (the slow path), is routed.
        hello = hello_for(pki, "arne.local")
        with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(hello), 50):
                s.sendall(hello[i:i + 50])
                time.sleep(0.005)
            reply = s.recv(65536)
            assert reply[:1] == b"\x16", f"no ServerHello: {reply[:20]!r}"  # a handshake record
        assert redirected(d, "arne.local")
        assert d.stop() == 0


def memory_tls(d, pki, server_name):
    """A TLS client over memory BIOs on a raw socket, handshake done: the
    test decides which records go out in which TCP write."""
    raw = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(pki).wrap_bio(incoming, outgoing, server_hostname=server_name)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            assert data, "closed during the handshake"
            incoming.write(data)
    raw.sendall(outgoing.read())
    return raw, obj, incoming, outgoing


def read_tls_until_close(raw, obj, incoming):
    """Plaintext from a memory_tls connection until the server's close_notify or FIN."""
    data = b""
    closed = False
    while not closed:
        chunk = raw.recv(65536)
        if not chunk:
            break
        incoming.write(chunk)
        try:
            while not closed:
                plain = obj.read(65536)
                closed = plain == b""  # close_notify
                data += plain
        except ssl.SSLWantReadError:
            pass
    raw.close()
    return data


@test
def pipelined_requests_over_tls_are_answered_in_order():
    d, pki, _ = tls_daemon([ARNE], ("arne",))
    with start(d):
        get = b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n"
        last = b"HEAD /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n"
        # Three in one record; three records in one TCP write; and 1,100 in
        # four 16 KiB records (one read of the socket), whose answers outgrow
        # the session's write queue so that it stops reading with records
        # still undecrypted in OpenSSL and nothing more on the socket: they
        # must be handed over when it reads again.
        for records in ([get + b"GET /nothing HTTP/1.1\r\nHost: arne.local\r\n\r\n" + last],
                        [get, b"GET /nothing HTTP/1.1\r\nHost: arne.local\r\n\r\n", last],
                        [get * 1100 + last]):
            raw, obj, incoming, outgoing = memory_tls(d, pki, "arne.local")
            for record in records:
                obj.write(record)
            raw.sendall(outgoing.read())
            statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", read_tls_until_close(raw, obj, incoming))
            if len(records) == 1 and len(records[0]) > 10000:
                assert statuses == [b"200"] * 1101, (len(statuses), set(statuses))
            else:
                assert statuses == [b"200", b"404", b"200"], statuses
        assert d.stop() == 0


@test
def sessions_resume_with_tickets_in_tls_13_and_12():
    d, pki, _ = tls_daemon([ARNE], ("arne",))
    with start(d):
        for maximum in (None, ssl.TLSVersion.TLSv1_2):
            ctx = client_context(pki, maximum)

            def connect(session=None):
                raw = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
                return ctx.wrap_socket(raw, server_hostname="arne.local", session=session)

            with connect() as first:
                assert http_over(first, "arne.local")[0] == 200  # TLS 1.3 tickets come after the handshake
                session = first.session
                assert not first.session_reused
            with connect(session) as second:
                assert second.session_reused, f"no resumption with {second.version()}"
                assert http_over(second, "arne.local")[0] == 200
        assert d.stop() == 0


@test
def sni_of_one_identity_with_the_host_of_another_is_421():
    d, pki, _ = tls_daemon([ARNE, MARCUS], ("arne", "marcus"))
    with start(d):
        with tls_connect(d, pki, "arne.local") as s:
            status, body = http_over(s, "marcus.local")
            assert status == 421, (status, body)
        assert d.stop() == 0


@test
def a_replaced_certificate_is_served_after_sighup_while_an_old_connection_goes_on():
    d, pki, installed = tls_daemon([ARNE], ("arne",))
    old_der, _ = installed["arne"]
    with start(d):
        pid = d.worker_pid("arne")
        old = tls_connect(d, pki, "arne.local")
        assert http_over(old, "arne.local")[0] == 200
        new_der, _ = pki.install(d, "arne", "arne.local")
        assert new_der != old_der
        mark = len(d.log())
        d.reload()
        d.wait_log(r"arne.*TLS certificate .* loaded on reload", start=mark, what="the certificate reload")
        with tls_connect(d, pki, "arne.local") as s:
            assert s.getpeercert(binary_form=True) == new_der, "the old certificate is still served"
            assert http_over(s, "arne.local")[0] == 200
        # The connection made before the reload goes on, on its old session.
        assert old.getpeercert(binary_form=True) == old_der
        assert http_over(old, "arne.local")[0] == 200
        old.close()
        assert d.worker_pid("arne") == pid
        assert d.find_log(r"arne: worker \d+ ready", start=mark) is None, "the worker was restarted"
        assert d.stop() == 0


@test
def an_identity_without_a_usable_certificate_is_reported_and_closed_others_unaffected():
    d, pki, _ = tls_daemon([ARNE, MARCUS], ("arne",))
    with start(d):
        line = d.wait_log(r"marcus.*no usable TLS certificate", what="marcus's certificate error")
        assert "marcus/tls/fullchain.pem" in line.string and "SIGHUP" in line.string, line.string
        # Its TLS connections are closed; its plain HTTP and arne's TLS go on.
        try:
            tls_connect(d, pki, "marcus.local").close()
            raise AssertionError("a TLS handshake with marcus succeeded without a certificate")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        assert redirected(d, "marcus.local")  # its worker serves plain HTTP (ACME challenges)
        with tls_connect(d, pki, "arne.local") as s:
            assert http_over(s, "arne.local")[0] == 200
        status = subprocess.run([os.environ.get("POSTA_SERVER", "posta-server"), "status", "--config",
                                 d.config_path], capture_output=True, text=True, timeout=30)
        assert re.search(r"TLS: open .*marcus/tls/fullchain.pem", status.stdout), status.stdout
        check = subprocess.run([os.environ.get("POSTA_SERVER", "posta-server"), "check", "--manifest", d.manifest,
                                "--config", d.config_path], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check
        assert re.search(r"warning: marcus: no usable TLS certificate", check.stderr), check.stderr
        # (arne's URL port, 443, is no listener's: that warning is test_proxy's.)
        assert "arne: no usable" not in check.stderr, check.stderr

        # A key others may read, or a symlink, is refused on reload; once
        # fixed, the reload brings TLS up without a restart.
        pki.install(d, "marcus", "marcus.local")
        key = os.path.join(d.state_dir, "marcus", "tls", "privkey.pem")
        os.chmod(key, 0o644)
        mark = len(d.log())
        d.reload()
        line = d.wait_log(r"marcus.*no usable TLS certificate \(on reload\)", start=mark)
        assert "chmod 600" in line.string, line.string
        os.chmod(key, 0o600)
        os.rename(key, key + ".real")
        os.symlink(key + ".real", key)
        mark = len(d.log())
        d.reload()
        line = d.wait_log(r"marcus.*no usable TLS certificate \(on reload\)", start=mark)
        assert "symlink" in line.string, line.string
        os.unlink(key)
        os.rename(key + ".real", key)
        mark = len(d.log())
        d.reload()
        d.wait_log(r"marcus.*TLS certificate .* loaded on reload", start=mark)
        with tls_connect(d, pki, "marcus.local") as s:
            assert http_over(s, "marcus.local")[0] == 200
        status = subprocess.run([os.environ.get("POSTA_SERVER", "posta-server"), "status", "--config",
                                 d.config_path], capture_output=True, text=True, timeout=30)
        assert "TLS:" not in status.stdout, status.stdout
        assert d.stop() == 0


@test
def socket_activation_passes_plain_and_tls_listeners_told_apart_by_name():
    import fcntl
    d, pki, _ = tls_daemon([ARNE], ("arne",))
    with d:
        listeners, fds = [], []
        for _ in range(2):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            listeners.append(listener)
            # Above 4, so that moving them to 3 and 4 clobbers neither.
            fds.append(fcntl.fcntl(listener.fileno(), fcntl.F_DUPFD, 10))
        plain_port, tls_port = (listener.getsockname()[1] for listener in listeners)
        script = ('LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=posta-server.socket:https exec "$0" serve '
                  '--listen 127.0.0.1:1 --manifest "$1" --config "$2"')

        def as_systemd_does():  # in the child: the sockets at fds 3 and 4
            os.dup2(fds[0], 3)
            os.dup2(fds[1], 4)

        proc = subprocess.Popen(["sh", "-c", script, os.environ.get("POSTA_SERVER", "posta-server"), d.manifest,
                                 d.config_path], pass_fds=(3, 4), preexec_fn=as_systemd_does,
                                stderr=subprocess.PIPE, text=True)
        for listener in listeners:
            listener.close()
        for fd in fds:
            os.close(fd)
        d.attach(proc)
        d.wait_log(rf"listening on https://127\.0\.0\.1:{tls_port}")
        d.wait_log(rf"listening on 127\.0\.0\.1:{plain_port}")
        d.port, d.tls_port = plain_port, tls_port
        d.worker_pid("arne")
        assert redirected(d, "arne.local")
        with tls_connect(d, pki, "arne.local") as s:
            assert http_over(s, "arne.local")[0] == 200
        assert d.stop() == 0


@test
def a_client_offering_only_other_protocols_is_refused_by_alpn():
    d, pki, _ = tls_daemon([ARNE], ("arne",))
    with start(d):
        ctx = client_context(pki)
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as raw:
            try:
                ctx.wrap_socket(raw, server_hostname="arne.local").close()
                raise AssertionError("a handshake offering only h2 succeeded")
            except ssl.SSLError as e:
                assert "NO APPLICATION PROTOCOL" in str(e).upper(), e
        assert d.stop() == 0


@test
def a_stalled_or_oversized_client_hello_is_closed():
    d, pki, _ = tls_daemon([ARNE], ("arne",), config={"head_timeout": "1s", "max_head_bytes": 1024})
    with start(d):
        hello = hello_for(pki, "arne.local")
        with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as s:
            s.sendall(hello[:20])
            started = time.monotonic()
            assert read_until_close(s) == b""
            assert time.monotonic() - started < 8
        # A ClientHello padded past max_head_bytes: its record header says so.
        big = bytearray(hello)
        with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as s:
            s.sendall(bytes(big[:3]) + (2000).to_bytes(2, "big") + bytes(big[5:]))
            assert read_until_close(s) == b""
        assert d.stop() == 0


@test
def a_tls_connection_over_the_per_address_cap_is_closed_without_plain_http():
    d, pki, _ = tls_daemon([ARNE], ("arne",), config={"max_connections_per_address": 1})
    with start(d):
        with tls_connect(d, pki, "arne.local") as first:
            assert http_over(first, "arne.local")[0] == 200
            with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as raw:
                raw.sendall(hello_for(pki, "arne.local"))
                # Not "HTTP/1.1 429": a TLS client could not read that.
                assert read_until_close(raw) == b""
        assert d.stop() == 0


def hello_for(pki, server_name):
    """A client's first flight, without a connection."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(pki).wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@test
def only_an_identitys_own_worker_holds_its_private_key():
    if os.geteuid() != 0:
        print("skip only_an_identitys_own_worker_holds_its_private_key: reading /proc/PID/mem needs root")
        return
    d, pki, installed = tls_daemon([ARNE, MARCUS], ("arne", "marcus"))
    _, arne_key = installed["arne"]
    _, marcus_key = installed["marcus"]
    # OpenSSL keeps the scalar as a BIGNUM: little-endian words on this
    # machine, so the bytes reversed; look for both orders.
    forms = {"arne": {arne_key, arne_key[::-1]}, "marcus": {marcus_key, marcus_key[::-1]}}
    with start(d):
        pids = {slug: d.worker_pid(slug) for slug in ("arne", "marcus")}
        for slug in pids:  # a handshake each, so every key has been used
            with tls_connect(d, pki, f"{slug}.local") as s:
                assert http_over(s, f"{slug}.local")[0] == 200
        everything = forms["arne"] | forms["marcus"]
        assert memory_holds(d.proc.pid, everything) == set(), "the supervisor holds a TLS private key"
        for slug, other in (("arne", "marcus"), ("marcus", "arne")):
            held = memory_holds(pids[slug], everything)
            # The check can see a key: each worker holds its own.
            assert held & forms[slug], f"{slug}'s own key was not found in its worker: the check is blind"
            assert not held & forms[other], f"{slug}'s worker holds {other}'s private key"
        assert d.stop() == 0


if __name__ == "__main__":
    main()
