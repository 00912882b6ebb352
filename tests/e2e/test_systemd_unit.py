"""systemd integration. The shipped systemd unit lets the worker make every system call its sandbox
setup and its seccomp allowlist (src/worker/sandbox.cpp) name: systemd's own
filter (SystemCallFilter=) kills with SIGSYS whatever it does not allow, so a
gap there kills every worker before it is ready. Checked against the groups
of this machine's systemd, as `systemd-analyze syscall-filter` prints them
(it runs without systemd as PID 1). READY=1 waits for every first start and
its STATUS= says who serves; a connection that arrives while its worker is in
its first start (socket activation) waits for it instead of a 503."""
import os
import re
import shutil
import socket
import subprocess

from posta import Daemon, read_until_close, status_of, test, main

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
UNIT = os.path.join(ROOT, "contrib", "posta-server.service")
SANDBOX = os.path.join(ROOT, "src", "worker", "sandbox.cpp")

# What the worker calls to set its sandbox up, before its own seccomp filter
# exists (sandbox.cpp: forbid_new_privileges, limit_resources, restrict_filesystem,
# limit_open_files, install_seccomp), and the exec that starts it.
SETUP_CALLS = ["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp",
               "prctl", "setrlimit", "prlimit64", "execve"]


def systemd_groups():
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: install Debian's systemd package (scripts/install-deps.sh does)"
    out = subprocess.run([tool, "syscall-filter", "--no-pager"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names, groups):
    out = set()
    for name in names:
        if name.startswith("@"):
            assert name in groups, f"{name}: no such group in this systemd"
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def unit_allows(groups):
    allowed = set()
    with open(UNIT) as f:
        for line in f:
            m = re.match(r"\s*SystemCallFilter=(.*)", line)
            if not m:
                continue
            value = m.group(1).split()
            if value and value[0].startswith("~"):
                allowed -= expand([value[0][1:]] + value[1:], groups)
            else:
                allowed |= expand(value, groups)
    assert allowed, f"{UNIT} has no SystemCallFilter="
    return allowed


def worker_calls():
    with open(SANDBOX) as f:
        text = f.read()
    body = re.search(r"allowed_syscalls\[\] = \{(.*?)\};", text, re.S)
    assert body, "allowed_syscalls not found in sandbox.cpp"
    names = re.findall(r'"([a-z0-9_]+)"', body.group(1))
    assert len(names) > 50, names
    return set(names) | set(SETUP_CALLS)


@test
def the_units_system_call_filter_allows_every_call_of_the_worker_sandbox():
    groups = systemd_groups()
    known = expand(["@known"], groups)
    allowed = unit_allows(groups)
    needed = worker_calls()
    missing = sorted((needed & known) - allowed)
    assert not missing, f"{UNIT}'s SystemCallFilter= lacks {missing}: workers would die of SIGSYS"
    unknown = sorted(needed - known)
    if unknown:
        print(f"  (unknown to this systemd, so not filterable by it: {unknown})")


@test
def ready_comes_once_every_worker_served_or_failed_and_status_names_the_failing():
    with Daemon([ARNE, MARCUS], autostart=False) as d:
        # marcus cannot start: his state folder is a regular file.
        os.makedirs(d.state_dir, mode=0o700)
        open(os.path.join(d.state_dir, "marcus"), "w").close()
        path = os.path.join(d.dir, "notify.sock")
        sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sd.bind(path)
        sd.settimeout(20)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            d.start(wait_ready=False)
        finally:
            del os.environ["NOTIFY_SOCKET"]
        message = sd.recv(4096).decode()
        d.wait_log(r"arne: worker \d+ ready")
        d.wait_log(r"marcus: worker \d+ .* before it was ready")
        assert message == "READY=1\nSTATUS=serving 1 of 2 identities; failing: marcus", message


@test
def a_connection_waiting_in_the_activated_socket_is_served_by_a_worker_still_starting():
    with Daemon([ARNE], autostart=False) as d:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        # The connection that makes systemd start the daemon: there before
        # the supervisor, so routed while arne's worker is still starting.
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n")
        d.start_activated(listener)
        with client:
            assert status_of(read_until_close(client)) == 200
        assert d.stop() == 0


if __name__ == "__main__":
    main()
