"""`posta-server token` (and `login`) while the daemon runs: the identity's own worker mints
the token, asked through the supervisor's control socket, which admits only
root and the daemon's user. Run as root with a daemon of another user (what
systemd's DynamicUser gives), refused to strangers, and answered with an
error, never a hang, when the worker dies, hangs, or is not ready."""
import json
import os
import re
import signal
import socket
import subprocess
import time

from posta import BINARY, Daemon, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
DAEMON_UID = 4242  # a uid with no user, as systemd's DynamicUser gives the service
NOBODY = 65534


def token(d, slug, *, as_uid=None, timeout=30, command="token"):
    """Runs the real `token` command, or `login` (as `as_uid`, through
    setpriv); returns the finished process."""
    prefix = [] if as_uid is None else ["setpriv", f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups"]
    return subprocess.run(prefix + [BINARY, command, slug, "--manifest", d.manifest, "--config", d.config_path],
                          capture_output=True, text=True, timeout=timeout)


def api_status(d, tok, host="arne.local"):
    return d.request(host, path="/api/messages", headers={"Authorization": f"Bearer {tok}"}).status


def ask(d, line):
    """A control client of our own: connected, `line` sent; the caller reads."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(d.control_socket)
    s.sendall(line.encode() + b"\n")
    return s


def answer_of(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data)


def wait_asks(d, count, start=0):
    wait_for(lambda: sum(1 for l in d.log()[start:] if "asks for a new API token" in l) >= count,
             what=f"{count} mint requests at the supervisor")


def tokens_logged(d, tokens):
    return [t for t in tokens if any(t in line or t[6:] in line for line in d.log())]


@test
def as_root_a_token_is_minted_by_the_worker_of_a_daemon_running_as_its_own_user():
    if os.geteuid() != 0:
        print("skipped: running the daemon as another user needs root")
        return
    with Daemon([ARNE], autostart=False) as d:
        d.start(as_uid=DAEMON_UID)
        folder = os.path.join(d.state_dir, "arne")
        r = token(d, "arne")
        assert r.returncode == 0, r
        tok = r.stdout.strip()
        assert re.fullmatch(r"posta_[A-Za-z0-9_-]{43}", tok) and r.stdout == tok + "\n", r
        assert api_status(d, tok) == 200
        d.wait_log(r"arne: API token minted by its worker for uid 0 \(pid \d+\)")
        d.wait_log(r"arne\[\d+\]: minted an owner's API token at the supervisor's request")
        # A sign-in link, the same way: its code signs a browser in, once.
        r = token(d, "arne", command="login")
        assert r.returncode == 0 and r.stdout.startswith(ARNE["url"] + "/#code="), r
        code = r.stdout.strip().split("#code=")[1]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", code), r
        for status in (201, 401):
            signed = d.request("arne.local", method="POST", path="/api/session", body=json.dumps({"code": code}).encode(),
                               headers={"Content-Type": "application/json"})
            assert signed.status == status, signed
        d.wait_log(r"arne: sign-in link minted by its worker for uid 0 \(pid \d+\)")
        assert tokens_logged(d, ["posta_" + code]) == [], "a sign-in code is in the log"
        # The daemon's own user may mint too.
        own = token(d, "arne", as_uid=DAEMON_UID)
        assert own.returncode == 0 and api_status(d, own.stdout.strip()) == 200, own
        # Nothing in the identity's folder is root's: the worker wrote it all.
        owners = {name: os.stat(os.path.join(folder, name)).st_uid for name in os.listdir(folder)}
        assert set(owners.values()) == {DAEMON_UID}, owners
        assert tokens_logged(d, [tok, own.stdout.strip()]) == [], "a token is in the log"
        assert d.stop() == 0
        # No daemon: root falls back to writing inbox.db itself, which it
        # must not do in a folder of the daemon's user; it says what to do.
        r = token(d, "arne")
        assert r.returncode == 1 and r.stdout == "", r
        assert "uid 4242" in r.stderr and "start the daemon" in r.stderr and len(r.stderr.splitlines()) == 1, r
        assert {os.stat(os.path.join(folder, n)).st_uid for n in os.listdir(folder)} == {DAEMON_UID}


@test
def a_stranger_uid_is_refused_even_when_the_socket_lets_it_connect():
    if os.geteuid() != 0:
        print("skipped: connecting as nobody needs root")
        return
    with Daemon([ARNE]) as d:
        os.chmod(d.dir, 0o755)  # nobody may read the config, as in /etc/posta
        r = token(d, "arne", as_uid=NOBODY)
        # The socket is 0600: nobody cannot even connect, and that is no
        # reason to write the database directly.
        assert r.returncode == 1 and r.stdout == "", r
        assert "Permission denied" in r.stderr and d.control_socket in r.stderr, r
        os.chmod(d.control_socket, 0o666)
        mark = len(d.log())
        r = token(d, "arne", as_uid=NOBODY)
        assert r.returncode == 1 and r.stdout == "", r
        assert r.stderr.startswith("posta-server token: refused: only root and the daemon's user (uid 0)"), r
        assert "you are uid 65534" in r.stderr and len(r.stderr.splitlines()) == 1, r
        d.wait_log(r"control socket: uid 65534 \(pid \d+\) asked for arne's API token; refused", start=mark)
        r = token(d, "arne", as_uid=NOBODY, command="login")
        assert r.returncode == 1 and r.stdout == "" and "refused" in r.stderr and "sign-in link" in r.stderr, r
        assert d.find_log(r"arne: uid 65534 .* asks for", start=mark) is None, "the refused request reached the worker"
        # Status stays what it was: anyone who may connect may ask.
        st = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", BINARY, "status",
                             "--config", d.config_path], capture_output=True, text=True, timeout=10)
        assert st.returncode == 0 and "arne" in st.stdout, st
        assert d.stop() == 0


@test
def an_unknown_slug_and_a_worker_that_is_not_ready_get_one_line_and_exit_1():
    with Daemon([ARNE, MARCUS], autostart=False) as d:
        # marcus cannot start: its keys.json is a symlink (a start error).
        os.makedirs(os.path.join(d.state_dir, "marcus"), mode=0o700)
        os.symlink("/dev/null", os.path.join(d.state_dir, "marcus", "keys.json"))
        d.start(wait_ready=False)
        d.worker_pid("arne")
        d.wait_log(r"marcus: worker \d+ exited with status 3")
        for slug, pattern in (("marcus", r"^posta-server token: marcus: its worker is not ready \((starting|backoff)\)"),
                              ("bob", r"^posta-server token: the daemon serves no identity \"bob\" .*known slugs: "
                                      r"arne, marcus$")):
            r = token(d, slug)
            assert r.returncode == 1 and r.stdout == "", r
            assert re.search(pattern, r.stderr) and len(r.stderr.splitlines()) == 1, r.stderr
        assert d.proc.poll() is None


@test
def a_worker_killed_while_minting_gets_its_client_an_error_at_once():
    with Daemon([ARNE]) as d:
        pid = d.worker_pid("arne")
        os.kill(pid, signal.SIGSTOP)
        mark = len(d.log())
        started = time.monotonic()
        cli = subprocess.Popen([BINARY, "token", "arne", "--manifest", d.manifest, "--config", d.config_path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_asks(d, 1, mark)
        os.kill(pid, signal.SIGKILL)
        out, err = cli.communicate(timeout=30)
        elapsed = time.monotonic() - started
        assert cli.returncode == 1 and out == "", (out, err)
        assert err == "posta-server token: arne: its worker ended before it answered\n", err
        assert elapsed < 8, f"the error took {elapsed:.1f}s: it waited for the timeout"
        # The restarted worker mints again.
        d.worker_pid("arne", start=mark)
        wait_for(lambda: token(d, "arne").returncode == 0, what="a token from the restarted worker")


@test
def a_hung_worker_times_out_with_an_error_and_its_late_answer_is_for_nobody():
    with Daemon([ARNE]) as d:
        pid = d.worker_pid("arne")
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        r = token(d, "arne")
        elapsed = time.monotonic() - started
        assert r.returncode == 1 and r.stdout == "", r
        assert r.stderr == "posta-server token: arne: its worker did not answer in time (is it hung?)\n", r
        assert 9 <= elapsed < 15, f"answered after {elapsed:.1f}s; the bound is 10 s"
        os.kill(pid, signal.SIGCONT)
        d.wait_log(r"arne: worker \d+ answered mint request \d+, which no longer waits")
        r = token(d, "arne")
        assert r.returncode == 0 and api_status(d, r.stdout.strip()) == 200, r


@test
def clients_that_leave_before_their_answer_are_safe_and_requests_in_flight_are_bounded():
    with Daemon([ARNE]) as d:
        pid = d.worker_pid("arne")
        os.kill(pid, signal.SIGSTOP)
        mark = len(d.log())
        waiting = [ask(d, "token arne") for _ in range(8)]
        wait_asks(d, 8, mark)
        # A ninth is answered at once: eight wait for this worker already.
        extra = answer_of(ask(d, "token arne"))
        assert "try again" in extra.get("error", ""), extra
        # Half leave before the worker answers; the others get their tokens.
        for s in waiting[:4]:
            s.close()
        os.kill(pid, signal.SIGCONT)
        tokens = [answer_of(s)["secret"] for s in waiting[4:]]
        assert len(set(tokens)) == 4
        assert all(api_status(d, t) == 200 for t in tokens)
        wait_for(lambda: sum(1 for l in d.log()[mark:] if "API token minted by its worker" in l) == 8,
                 what="the worker's eight answers")
        assert answer_of(ask(d, "status"))["identities"][0]["state"] == "ready"
        assert answer_of(ask(d, "token")).get("error", "").startswith("token needs a slug")
        assert tokens_logged(d, tokens) == []
        assert d.stop() == 0


if __name__ == "__main__":
    main()
