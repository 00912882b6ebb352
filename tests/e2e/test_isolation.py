"""Each worker holds only its own identity's files and sockets."""
import os
import socket
import stat

from posta import Daemon, listening_inodes, open_fds, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}


@test
def workers_create_their_state_with_private_modes():
    with Daemon([ARNE, MARCUS]) as d:
        for slug in ("arne", "marcus"):
            folder = os.path.join(d.state_dir, slug)
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(os.path.join(folder, "keys.json")).st_mode) == 0o600
            assert os.path.exists(os.path.join(folder, "inbox.db"))
        assert d.find_log(r"arne\[\d+\]: created .*keys\.json"), d.log()


@test
def a_worker_holds_no_listening_socket_and_no_other_identitys_files():
    with Daemon([ARNE, MARCUS]) as d:
        listening = listening_inodes()
        pids = {slug: d.worker_pid(slug) for slug in ("arne", "marcus")}
        supervisor_fds = open_fds(d.proc.pid)
        assert any(target.startswith("socket:[") and target[8:-1] in listening
                   for target in supervisor_fds.values()), "the supervisor should hold the listener"
        for slug, pid in pids.items():
            other = "marcus" if slug == "arne" else "arne"
            fds = open_fds(pid)
            for fd, target in fds.items():
                if target.startswith("socket:["):
                    assert target[8:-1] not in listening, f"{slug} worker holds a listening socket (fd {fd})"
                assert os.path.join(d.state_dir, other) not in target, f"{slug} worker holds {target}"
            own = [t for t in fds.values() if t.startswith(os.path.join(d.state_dir, slug))]
            assert any(t.endswith("inbox.db") for t in own), (slug, fds)
            assert not any("signalfd" in t for t in fds.values()), (slug, fds)
            # An inherited descriptor is the same socket in two processes: the
            # supervisor's ends of the channels, its listener and the other
            # worker's sockets must not appear here.
            others = set(supervisor_fds.values()) | set(open_fds(pids[other]).values())
            shared = [t for t in fds.values() if t.startswith("socket:[") and t in others]
            assert shared == [], (slug, shared)


@test
def a_worker_holds_the_connections_it_serves_and_the_supervisor_does_not():
    with Daemon([ARNE]) as d:
        before = len(open_fds(d.proc.pid))
        with d.connect() as s:
            s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            # The connection is alive (keep-alive) in the worker only.
            assert len(open_fds(d.proc.pid)) == before


def answered(sock, host):
    """Whether a keep-alive request on `sock` gets a 200 (False: closed unanswered)."""
    try:
        sock.sendall(f"GET /.well-known/posta HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return sock.recv(65536).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@test
def a_worker_out_of_file_descriptors_drops_connections_and_nobody_else_notices():
    with Daemon([ARNE, MARCUS], config={"worker_open_files": 64}) as d:
        arne_pid = d.worker_pid("arne")
        with open(f"/proc/{arne_pid}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files"))
        assert line.split()[3:5] == ["64", "64"], line
        held = []
        try:
            # Keep-alive connections pile up in arne's worker until its 64
            # descriptors are gone; later ones are closed unanswered.
            refused = 0
            for _ in range(80):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                held.append(s)
                refused += not answered(s, "arne.local")
            assert 0 < refused < 80, refused
            assert d.wait_log(r"arne\[\d+\]: .*connection dropped: this worker has all of its 64 file descriptors")
            # Marcus serves as ever; arne's worker is the same process.
            with d.connect() as s:
                assert answered(s, "marcus.local")
            assert d.worker_pid("arne") == arne_pid
        finally:
            for s in held:
                s.close()
        # With its connections closed, arne serves again.
        def arne_serves():
            with d.connect() as s:
                return answered(s, "arne.local")
        wait_for(arne_serves, what="arne serving again")
        assert d.worker_pid("arne") == arne_pid


if __name__ == "__main__":
    main()
