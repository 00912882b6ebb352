"""The control socket and `status`: answers whatever bytes the operator's
paths hold, and binds only where it harms nothing."""
import json
import os
import socket
import subprocess

from posta import BINARY, Daemon, test, main

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}


def status(d, *args):
    return subprocess.run([BINARY, "status", "--config", d.config_path, *args],
                          capture_output=True, text=True, errors="replace", timeout=10)


@test
def status_answers_when_the_manifest_path_is_not_utf8():
    with Daemon([ARNE], autostart=False) as d:
        d.manifest = os.fsdecode(os.path.join(os.fsencode(d.dir), b"identit\xe9s-\xff.toml"))
        d.write_manifest([ARNE])
        d.start()
        r = status(d, "--json")
        assert r.returncode == 0, r
        st = json.loads(r.stdout)
        assert st["manifest"].endswith("identit\ufffds-\ufffd.toml"), st["manifest"]
        assert st["identities"][0]["state"] == "ready", st
        assert status(d).returncode == 0
        assert d.proc.poll() is None, "the supervisor died"
        assert d.request("arne.local").status == 200
        assert d.stop() == 0


def serve(d, timeout=30):
    """Runs a second `serve` on `d`'s files; returns the finished process."""
    return subprocess.run([BINARY, "serve", "--listen", "127.0.0.1:0", "--manifest", d.manifest,
                           "--config", d.config_path], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@test
def a_control_socket_path_naming_a_file_is_a_start_error_and_the_file_stays():
    with Daemon([ARNE], autostart=False) as d:
        with open(d.control_socket, "w") as f:
            f.write("the operator's notes\n")
        r = serve(d)
        assert r.returncode == 1, r
        assert d.control_socket in r.stderr and "not a socket" in r.stderr, r.stderr
        with open(d.control_socket) as f:
            assert f.read() == "the operator's notes\n"


@test
def a_second_daemon_does_not_take_over_a_live_control_socket():
    with Daemon([ARNE]) as d:
        r = serve(d)
        assert r.returncode == 1, r
        assert d.control_socket in r.stderr and "another posta-server" in r.stderr, r.stderr
        st = status(d, "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["pid"] == d.proc.pid, st
        assert d.stop() == 0
        assert not os.path.exists(d.control_socket)


@test
def a_stale_control_socket_is_replaced():
    with Daemon([ARNE], autostart=False) as d:
        left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        left.bind(d.control_socket)
        left.close()  # what a kill -9 leaves: the file, nobody listening
        d.start()
        st = status(d, "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["pid"] == d.proc.pid, st
        assert d.stop() == 0


@test
def at_exit_the_daemon_removes_only_the_socket_it_bound():
    with Daemon([ARNE]) as d:
        os.unlink(d.control_socket)
        with open(d.control_socket, "w") as f:
            f.write("put here later\n")
        assert d.stop() == 0
        with open(d.control_socket) as f:
            assert f.read() == "put here later\n"


if __name__ == "__main__":
    main()
