"""Harness for the end-to-end tests: starts the real posta-server binary on
127.0.0.1 with an ephemeral port, a temporary state folder and a manifest of
the test's choosing, and talks to it over real sockets. Standard library only.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BINARY = os.environ.get("POSTA_SERVER", "posta-server")

# What ASan, LeakSanitizer and UBSan print when they find something. In a
# sanitizer build (.ci/run) a report in the daemon's output fails the test,
# even when it came from a worker the supervisor simply restarted.
# Reports that fail any test whose daemon printed them: a sanitizer's, and a
# worker's loop closing with a handle still open (a leak the sanitizers
# cannot see).
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |a handle was left open")


def die_with_parent():
    """In a child before exec: SIGTERM it when the test process dies, so a
    killed test run (a meson timeout) leaves no daemon behind."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for(predicate, timeout=10.0, what="condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def free_port():
    """A TCP port of 127.0.0.1 free right now, for a daemon that must know its
    own port before it starts (an identity URL naming it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_names(names):
    """Whether every name resolves to 127.0.0.1 alone, adding the missing ones
    to /etc/hosts when we may (as root, like tests/smoke-hosts.sh)."""
    def resolved(name):
        try:
            return {info[4][0] for info in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)} == {"127.0.0.1"}
        except socket.gaierror:
            return False
    missing = [name for name in names if not resolved(name)]
    if missing and os.access("/etc/hosts", os.W_OK):
        with open("/etc/hosts", "a") as f:
            f.write("".join(f"127.0.0.1 {name}\n" for name in missing))
    return all(resolved(name) for name in names)


# The loopback networks, as outbound_allow entries.
LOOPBACK_RANGES = ["127.0.0.0/8", "::1/128"]


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def manifest_text(identities):
    out = []
    for ident in identities:
        out.append("[[identity]]")
        for key in ("slug", "url", "name"):
            out.append(f"{key} = {toml_value(ident[key])}")
        out.append("")
    return "\n".join(out)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


def http_request(port, method, path, fields, body=None, timeout=5.0, source=None):
    """One request to 127.0.0.1:`port` with exactly the header `fields`
    given ((name, value) pairs, in order: no Host or Content-Length is
    added), from the local address `source` when given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in fields:
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


class Daemon:
    """One `posta-server serve` process and its files. Use as a context manager."""

    def __init__(self, identities=(), config=None, args=(), autostart=True):
        self.dir = tempfile.mkdtemp(prefix="posta-e2e-")
        self.state_dir = os.path.join(self.dir, "state")
        self.manifest = os.path.join(self.dir, "identities.toml")
        self.config_path = os.path.join(self.dir, "posta.toml")
        self.identities = list(identities)
        self.write_manifest(self.identities)
        self.control_socket = os.path.join(self.dir, "control.sock")
        self.write_config(config)
        self.args = list(args)
        self.lines = []
        self.lock = threading.Lock()
        self.proc = None
        self.port = None
        self.autostart = autostart

    # -- lifecycle ---------------------------------------------------------

    def start(self, wait_ready=True, as_uid=None):
        """Starts the daemon; with `as_uid` (root only), as that uid, owner of
        the test's folder, as systemd's DynamicUser= and StateDirectory= make it."""
        prefix = []
        if as_uid is not None:
            for path in [self.dir] + [os.path.join(self.dir, n) for n in os.listdir(self.dir)]:
                os.chown(path, as_uid, as_uid)
            # setpriv clears the parent-death signal: the test kills it itself.
            prefix = ["setpriv", f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups"]
        self.proc = subprocess.Popen(
            prefix + [BINARY, "serve", "--listen", "127.0.0.1:0", "--manifest", self.manifest,
                      "--config", self.config_path] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, errors="replace", preexec_fn=die_with_parent)
        self.attach(self.proc)
        match = self.wait_log(r"listening on 127\.0\.0\.1:(\d+)", what="the listening line")
        self.port = int(match.group(1))
        if wait_ready:
            for ident in self.identities:
                self.worker_pid(ident["slug"])
        return self

    def start_activated(self, listener, *args):
        """Starts the daemon as systemd's socket activation does: `listener`,
        a listening socket (closed here), becomes its fd 3 with LISTEN_PID and
        LISTEN_FDS=1; `args` are more arguments of serve. Returns at once."""
        fd = listener.fileno()
        move = f"exec 3<&{fd} {fd}<&-; " if fd != 3 else ""
        script = move + 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve --manifest "$1" --config "$2" "${@:3}"'
        proc = subprocess.Popen(["bash", "-c", script, BINARY, self.manifest, self.config_path, *args],
                                pass_fds=(fd,), stderr=subprocess.PIPE, text=True)
        listener.close()
        self.attach(proc)

    def attach(self, proc):
        """Follows the log of `proc`, a posta-server started by the caller."""
        self.proc = proc
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self.lock:
                self.lines.append(line)
            if os.environ.get("POSTA_E2E_VERBOSE"):
                print("  | " + line, file=sys.stderr)

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("posta-server did not stop within %ss of SIGTERM" % timeout)

    def __enter__(self):
        return self.start() if self.autostart else self

    def __exit__(self, kind, value, tb):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc:
                self.reader.join(timeout=5)  # the rest of the output, up to EOF
            report = next((l for l in self.log() if SANITIZER_REPORT.search(l)), None)
            if kind is None and report:
                kind = AssertionError
                raise AssertionError(f"report in posta-server's output: {report}")
        finally:
            if kind is not None:
                print("---- posta-server log ----", file=sys.stderr)
                for line in self.log():
                    print(line, file=sys.stderr)
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def write_config(self, config=None):
        """Writes the config file: the test's state folder and control socket,
        then `config`'s keys (which may override those two)."""
        settings = {
            "state_dir": self.state_dir,
            "control_socket": self.control_socket,
            # Every test peer is on loopback, which the outbound policy
            # refuses by default; a test of the policy sets its own.
            "outbound_allow": LOOPBACK_RANGES,
        }
        settings.update(config or {})
        with open(self.config_path, "w") as f:
            for key, value in settings.items():
                f.write(f"{key} = {toml_value(value)}\n")

    def reload(self):
        """SIGHUP, then waits for the reload to be done; returns its log line."""
        mark = len(self.log())
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_log(r"reload (done|rejected)", start=mark, what="the reload to finish")

    def write_manifest(self, identities):
        with open(self.manifest, "w") as f:
            f.write(manifest_text(identities))

    # -- log ---------------------------------------------------------------

    def log(self):
        with self.lock:
            return list(self.lines)

    def find_log(self, pattern, start=0):
        regex = re.compile(pattern)
        for line in self.log()[start:]:
            m = regex.search(line)
            if m:
                return m
        return None

    def wait_log(self, pattern, timeout=10.0, start=0, what=None):
        def check():
            found = self.find_log(pattern, start)
            if found or self.proc.poll() is None:
                return found
            self.reader.join(timeout=5)  # the process is gone: read its log to the end
            found = self.find_log(pattern, start)
            if not found:
                raise AssertionError(f"posta-server exited ({self.proc.returncode}) before logging {pattern!r}:\n"
                                     + "\n".join(self.log()))
            return found
        return wait_for(check, timeout, what or repr(pattern))

    def worker_pid(self, slug, timeout=10.0, start=0):
        """The pid of `slug`'s worker once it reported ready."""
        m = self.wait_log(rf"{re.escape(slug)}: worker (\d+) ready", timeout, start, f"{slug} ready")
        return int(m.group(1))

    def token(self, slug):
        """Issues an owner API token for `slug` with the real `token` command."""
        r = subprocess.run([BINARY, "token", slug, "--manifest", self.manifest, "--config", self.config_path],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"posta-server token {slug} failed ({r.returncode}): {r.stderr}"
        lines = r.stdout.splitlines()
        assert len(lines) == 1 and lines[0], f"token printed {r.stdout!r}"
        return lines[0]

    # -- HTTP --------------------------------------------------------------

    def connect(self, timeout=5.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, host, method="GET", path="/.well-known/posta", headers=None, body=None, timeout=5.0):
        fields = [("Host", host)] if host is not None else []
        fields += list((headers or {}).items())
        if body is not None:
            fields.append(("Content-Length", str(len(body))))
        return http_request(self.port, method, path, fields, body, timeout)

    def raw(self, data, timeout=5.0):
        """Sends raw bytes, reads until the server closes; returns the bytes."""
        with self.connect(timeout) as s:
            s.sendall(data)
            return read_until_close(s)


class OwnerApi:
    """An identity's owner API, called with its Bearer token. `connect()`
    opens each call's HTTP connection: to the daemon itself (then `host` is
    sent as Host) or through a front (then the connection names the host).
    A call that is not answered 200 or 202 fails the test."""

    def __init__(self, token, connect, host=None):
        self.token, self.connect, self.host = token, connect, host

    def call(self, method, path, body=None):
        conn = self.connect()
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.host is not None:
                headers["Host"] = self.host
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            answer = r.read()
            assert r.status in (200, 202), (method, path, r.status, answer)
            return json.loads(answer)
        finally:
            conn.close()

    def send(self, to, subject, body):
        """Sends a text/plain message; its id."""
        return self.call("POST", "/api/messages", {"to": to, "subject": subject, "body": body,
                                                   "content_type": "text/plain"})["id"]

    def deliveries_of(self, message_id):
        return [x for x in self.call("GET", "/api/deliveries")["deliveries"] if x["message_id"] == message_id]

    def inbox(self):
        return self.call("GET", "/api/messages?box=inbox")["messages"]


def wait_listening(proc, ports, name, output):
    """Polls until `proc` (called `name`) accepts connections on each of
    `ports` of 127.0.0.1; fails at once with its `output()` if it exits."""
    def listening():
        assert proc.poll() is None, f"{name} exited: {output()}"
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(listening, what=f"{name} to listen")


class Haproxy:
    """Debian's haproxy in the foreground, in `mode` (http or tcp), with
    `sections` after its global and defaults sections: frontends and
    backends, `{port}` standing for the port it listens on. Each connection
    is logged (tcplog or httplog) as soon as it reaches a server; lines()
    has what it printed so far. `port`: one chosen before (free_port()),
    when it must be known first."""

    def __init__(self, directory, mode, sections, port=None):
        self.port = port or free_port()
        self.config = os.path.join(directory, "haproxy.cfg")
        with open(self.config, "w") as f:
            f.write(f"""global
    maxconn 100
    log stdout format raw local0
defaults
    mode {mode}
    log global
    option {mode}log
    option logasap
    timeout connect 5s
    timeout client 30s
    timeout server 30s
""" + sections.replace("{port}", str(self.port)))
        self.proc = subprocess.Popen([shutil.which("haproxy") or "haproxy", "-db", "-f", self.config],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", preexec_fn=die_with_parent)
        self.output = []
        self.reader = threading.Thread(target=self._read_output, daemon=True)
        self.reader.start()

        wait_listening(self.proc, [self.port], "haproxy", self.lines)

    def _read_output(self):
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def lines(self):
        return list(self.output)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=5)


def read_until_close(sock):
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def server_side_unread(port):
    """For each connection to 127.0.0.1:`port`, by the client's port: the
    bytes its server end has received but nobody read yet, from
    /proc/net/tcp (a connection the kernel does not show is missing)."""
    unread = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == port:
                unread[int(remote.split(":")[1], 16)] = int(fields[4].split(":")[1], 16)
    return unread


def wait_read_by_server(socks, port, what="the server to read what was sent"):
    """Polls until the server has read everything sent so far on `socks` (one
    socket or several): the way to make a head arrive in pieces without
    sleeping."""
    client_ports = [s.getsockname()[1] for s in ([socks] if isinstance(socks, socket.socket) else socks)]

    def all_read():
        unread = server_side_unread(port)
        return all(unread.get(p) == 0 for p in client_ports)
    wait_for(all_read, what=what)


def status_of(raw_response):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", raw_response)
    assert m, f"not an HTTP response: {raw_response[:200]!r}"
    return int(m.group(1))


def memory_holds(pid, needles):
    """Which of `needles` (bytes) occur in the readable memory of `pid`
    (root reads any process), read in chunks that overlap by the longest
    needle. Mappings over 4 GiB are skipped: only a sanitizer's shadow memory
    is that large. Callers check that something the process must hold is
    found, so that the scan cannot pass blind."""
    found = set()
    chunk_size = 16 << 20
    overlap = max(len(n) for n in needles) - 1
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if (not fields[1].startswith("r") or end - start > 4 << 30
                    or (len(fields) > 5 and fields[5] in ("[vvar]", "[vvar_vclock]", "[vsyscall]"))):
                continue
            tail = b""
            for at in range(start, end, chunk_size):
                try:
                    mem.seek(at)
                    chunk = tail + mem.read(min(chunk_size, end - at))
                except (OSError, ValueError, OverflowError):
                    break  # a mapping that went away or cannot be read
                found.update(n for n in needles if n in chunk)
                tail = chunk[-overlap:]
    return found


def open_fds(pid):
    """What each open fd of `pid` points to, as readlink shows it."""
    out = {}
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            out[int(name)] = os.readlink(os.path.join(base, name))
        except FileNotFoundError:
            pass
    return out


def listening_inodes():
    """Socket inodes of every listening TCP socket on this machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        inodes.add(fields[9])
        except FileNotFoundError:
            pass
    return inodes


def cpu_ticks(pid):
    """utime + stime of `pid`, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def main():
    """Runs every @test of the calling script; exit status 1 if any failed."""
    failed = 0
    only = sys.argv[1:]
    for fn in TESTS:
        if only and fn.__name__ not in only:
            continue
        started = time.monotonic()
        try:
            fn()
            print(f"ok   {fn.__name__} ({time.monotonic() - started:.2f}s)")
        except Exception as exc:  # report every failure, keep going
            failed += 1
            import traceback
            traceback.print_exc()
            print(f"FAIL {fn.__name__}: {exc}")
    print(f"{len(TESTS) - failed if not only else '-'} passed, {failed} failed")
    sys.exit(1 if failed else 0)
