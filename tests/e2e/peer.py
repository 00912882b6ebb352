"""A test sender for the end-to-end tests: another posta identity, played by
this process. It has its own ed25519 keypair (libsodium through ctypes),
serves its identity document at http://127.0.0.1:<port>/.well-known/posta
from a thread, and builds, signs and sends deliveries to a posta-server.
Standard library plus libsodium only.
"""
import base64
import ctypes
import datetime
import http.server
import json
import os
import socket
import threading
import time
import urllib.parse

from posta import http_request

_sodium = ctypes.CDLL("libsodium.so.23")
if _sodium.sodium_init() < 0:
    raise RuntimeError("sodium_init failed")
_sodium.crypto_sign_seed_keypair.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
_sodium.crypto_sign_detached.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulonglong),
                                         ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]


def b64url(data):
    """base64url without padding, the encoding of every binary value of posta."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_id():
    return b64url(os.urandom(16))


def rfc3339(when=None):
    """`when` (a UTC datetime; default now) as RFC 3339 UTC, whole seconds."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Keypair:
    """An ed25519 keypair in libsodium's layout; a fixed `seed` gives fixed keys."""

    def __init__(self, seed=None):
        seed = seed if seed is not None else os.urandom(32)
        assert len(seed) == 32
        public = ctypes.create_string_buffer(32)
        secret = ctypes.create_string_buffer(64)
        if _sodium.crypto_sign_seed_keypair(public, secret, seed) != 0:
            raise RuntimeError("crypto_sign_seed_keypair failed")
        self.public = public.raw
        self.secret = secret.raw

    def sign(self, data):
        """The detached signature (64 bytes) of exactly `data`."""
        signature = ctypes.create_string_buffer(64)
        length = ctypes.c_ulonglong(0)
        if _sodium.crypto_sign_detached(signature, ctypes.byref(length), data, len(data), self.secret) != 0:
            raise RuntimeError("crypto_sign_detached failed")
        return signature.raw


class Listener:
    """A TCP port on 127.0.0.1 that never answers and only counts the
    connections made to it: what a probe of the operator's network would
    reach. Use as a context manager."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self.held = []

    def accept_count(self):
        """Connections made so far. The kernel completes a handshake before
        any accept(), so one a client made before it returned is counted."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.accepted
            self.accepted += 1
            self.held.append(conn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for conn in self.held:
            conn.close()
        self.sock.close()
        return False


class Peer:
    """One sending identity, http://127.0.0.1:<port> (or another `host` name
    for the same address). Use as a context manager
    (or call stop()). What its document server does can be changed on the fly:
    `document` (a dict, or raw bytes), `status` and `delay` (seconds)."""

    def __init__(self, name="Test Peer", seed=None, host="127.0.0.1", port=0):
        self.keys = Keypair(seed)
        self.name = name
        self.status = 200
        self.delay = 0.0
        self.raw_document = None
        self.document_gets = 0
        # The inbox side, for the outbox tests: POST /inbox is answered with
        # the next of `inbox_answers` ((status, headers, body)), then 202;
        # every request is kept in `deliveries` as (headers, body).
        self.inbox_answers = []
        self.deliveries = []
        self.delivery_times = []  # time.monotonic() of each, in order
        self.lock = threading.Lock()
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path != "/.well-known/posta":
                    self.send_error(404)
                    return
                with peer.lock:
                    peer.document_gets += 1
                if peer.delay:
                    time.sleep(peer.delay)
                body = peer.raw_document if peer.raw_document is not None else json.dumps(peer.document()).encode()
                try:
                    self.send_response(peer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the daemon gave up waiting (a timeout test)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != "/inbox":
                    self.send_error(404)
                    return
                with peer.lock:
                    peer.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    peer.delivery_times.append(time.monotonic())
                    status, headers, answer = peer.inbox_answers.pop(0) if peer.inbox_answers else (202, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        # `port` 0 takes a free one; a chosen one lets a test bring a
        # recipient up at an address the daemon has been failing to reach.
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # `host` may be a name ("localhost") for the daemon to resolve.
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def document(self):
        return {"posta": 1, "url": self.url, "name": self.name,
                "public_key": b64url(self.keys.public), "inbox": self.url + "/inbox"}

    def stop(self):
        """Stops serving and closes the port: from now on this sender is unreachable."""
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()

    def rotate_key(self):
        self.keys = Keypair()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- deliveries -------------------------------------------------------

    def envelope(self, to, **fields):
        """A valid envelope from this peer to `to`; `fields` override or add."""
        env = {"posta": 1, "id": new_id(), "from": self.url, "to": to, "sent_at": rfc3339(),
               "subject": "Hello", "content_type": "text/plain", "body": "Hi there."}
        env.update(fields)
        return env

    @staticmethod
    def encode(envelope):
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def signature_header(self, body, keys=None):
        return "ed25519=" + b64url((keys or self.keys).sign(body))

    def send(self, daemon, to, body, signature="sign", source=None, timeout=15.0, headers=None):
        """POSTs `body` (bytes; a dict is encoded) to `daemon`'s /inbox with
        the Host of the URL `to`. `signature`: "sign" signs `body` with this
        peer's key, None sends no Posta-Signature, a str is sent as the header
        value. `source`: the local address to connect from ("127.0.0.2")."""
        if isinstance(body, dict):
            body = self.encode(body)
        host = urllib.parse.urlsplit(to).netloc
        all_headers = {"Host": host, "Content-Type": "application/json", "Content-Length": str(len(body))}
        if signature == "sign":
            all_headers["Posta-Signature"] = self.signature_header(body)
        elif signature is not None:
            all_headers["Posta-Signature"] = signature
        all_headers.update(headers or {})
        return http_request(daemon.port, "POST", "/inbox", list(all_headers.items()), body, timeout, source)

    def deliver(self, daemon, to, **fields):
        """Builds, signs and sends one envelope to `to`; returns (envelope, reply)."""
        env = self.envelope(to, **fields)
        return env, self.send(daemon, to, env)
