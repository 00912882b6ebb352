"""`posta-server backup` and `restore`: a consistent copy of one identity taken
while its worker accepts deliveries, restored into another daemon's state
folder as that daemon's user; neither ever overwrites a file."""
import os
import sqlite3
import subprocess
import threading
import time

from peer import Peer
from posta import BINARY, Daemon, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
DAEMON_UID = 4242  # a uid with no user, as systemd's DynamicUser gives the service


def run(command, slug, folder, d):
    return subprocess.run([BINARY, command, slug, folder, "--config", d.config_path], capture_output=True,
                          text=True, timeout=60)


def message_ids(db_path):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT id FROM messages WHERE box = 'inbox'")}
    finally:
        db.close()


def integrity(db_path):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()


def owners(folder):
    return {name: os.lstat(os.path.join(folder, name)).st_uid for name in os.listdir(folder)}


class Deliveries:
    """Delivers to arne from `peer` without pause, in a thread, and notes the
    id of every envelope sent and of every one acknowledged (202)."""

    def __init__(self, daemon, peer):
        self.daemon, self.peer = daemon, peer
        self.sent, self.acked, self.failures = [], [], []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            env = self.peer.envelope(ARNE["url"], body="message %d" % len(self.sent))
            with self.lock:
                self.sent.append(env["id"])
            r = self.peer.send(self.daemon, ARNE["url"], env)
            with self.lock:
                if r.status == 202:
                    self.acked.append(env["id"])
                else:
                    self.failures.append(r)

    def acked_now(self):
        with self.lock:
            return set(self.acked)

    def stop(self):
        self.stopping = True
        self.thread.join(30)


@test
def a_backup_taken_under_deliveries_restores_everything_acknowledged_before_it_began():
    as_uid = DAEMON_UID if os.geteuid() == 0 else None
    with Daemon([ARNE], args=["--rate-per-minute", "0"], autostart=False) as a, \
            Daemon([MARCUS], autostart=False) as b, Peer() as peer:
        a.start(as_uid=as_uid)
        b.start(as_uid=as_uid)
        pid = a.worker_pid("arne")
        folder = os.path.join(a.dir, "backup")
        deliveries = Deliveries(a, peer)
        wait_for(lambda: len(deliveries.acked_now()) >= 50, timeout=30, what="50 deliveries")
        before = deliveries.acked_now()
        started = time.monotonic()
        r = run("backup", "arne", folder, a)
        took = time.monotonic() - started
        during = deliveries.acked_now() - before
        wait_for(lambda: len(deliveries.acked_now()) >= len(before) + len(during) + 20, timeout=30,
                 what="deliveries after the backup")
        deliveries.stop()
        assert r.returncode == 0, r
        assert r.stdout.startswith("posta-server backup: arne: keys.json and inbox.db (") and folder in r.stdout, r
        print(f"  backup of {len(before)}+ messages took {took * 1000:.0f} ms; {len(during)} acknowledged meanwhile")
        assert deliveries.failures == [], deliveries.failures[:3]
        # The worker was not stopped; nothing of the identity became root's.
        assert a.find_log(r"arne: worker \d+ (exited|killed)") is None
        assert a.worker_pid("arne") == pid
        if as_uid is not None:
            assert set(owners(os.path.join(a.state_dir, "arne")).values()) == {as_uid}
        assert set(os.listdir(folder)) == {"keys.json", "inbox.db"}
        assert os.stat(os.path.join(folder, "keys.json")).st_mode & 0o777 == 0o600

        # Restored into b, which does not serve arne, then served by it.
        r = run("restore", "arne", folder, b)
        assert r.returncode == 0, r
        restored = os.path.join(b.state_dir, "arne")
        if as_uid is not None:
            assert set(owners(restored).values()) == {as_uid}, owners(restored)
        with open(os.path.join(folder, "keys.json"), "rb") as f1, \
                open(os.path.join(a.state_dir, "arne", "keys.json"), "rb") as f2:
            assert f1.read() == f2.read()
        ids = message_ids(os.path.join(restored, "inbox.db"))
        assert before <= ids, f"{len(before - ids)} acknowledged messages are missing"
        assert ids <= set(deliveries.sent), "the restored inbox has a message nobody sent"
        assert integrity(os.path.join(restored, "inbox.db")) == [("ok",)]
        b.identities = [MARCUS, ARNE]
        b.write_manifest(b.identities)
        mark = len(b.log())
        assert "reload done" in b.reload().group(0)
        b.worker_pid("arne", start=mark)
        doc_a = a.request("arne.local").json()
        doc_b = b.request("arne.local").json()
        assert doc_a["public_key"] == doc_b["public_key"]
        token = subprocess.run([BINARY, "token", "arne", "--manifest", b.manifest, "--config", b.config_path],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        r = b.request("arne.local", path="/api/messages?box=inbox&limit=1", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200 and len(r.json()["messages"]) == 1, r
        assert a.stop() == 0 and b.stop() == 0


@test
def a_backup_as_root_of_an_identity_no_worker_holds_leaves_only_files_of_the_daemons_user():
    if os.geteuid() != 0:
        print("skipped: running the daemon as another user needs root")
        return
    with Daemon([ARNE, MARCUS], autostart=False) as d:
        d.start(as_uid=DAEMON_UID)
        # Removed and drained, as the first step of a move. Its checkpoint
        # emptied the -wal; without SQLite's side files (as after a copy of
        # the folder), the backup's reader makes its own.
        d.identities = [MARCUS]
        d.write_manifest(d.identities)
        d.reload()
        d.wait_log(r"arne: worker \d+ exited with status 0")
        arne = os.path.join(d.state_dir, "arne")
        for side in ("inbox.db-wal", "inbox.db-shm"):
            if os.path.exists(os.path.join(arne, side)):
                assert side != "inbox.db-wal" or os.path.getsize(os.path.join(arne, side)) == 0
                os.unlink(os.path.join(arne, side))
        r = run("backup", "arne", os.path.join(d.dir, "backup"), d)
        assert r.returncode == 0, r
        assert set(owners(arne).values()) == {DAEMON_UID}, owners(arne)
        # Its worker, which refuses files of another user, starts on them.
        d.identities = [MARCUS, ARNE]
        d.write_manifest(d.identities)
        mark = len(d.log())
        d.reload()
        d.worker_pid("arne", start=mark)
        assert d.stop() == 0


@test
def backup_and_restore_refuse_to_overwrite_anything_and_say_so():
    with Daemon([ARNE]) as d:
        folder = os.path.join(d.dir, "backup")
        os.mkdir(folder)
        for name in ("keys.json", "inbox.db-wal"):
            path = os.path.join(folder, name)
            with open(path, "w") as f:
                f.write("the operator's\n")
            r = run("backup", "arne", folder, d)
            assert r.returncode == 1 and r.stdout == "", r
            assert r.stderr == (f"posta-server backup: arne: refused {path}: exists already, and nothing is "
                                "overwritten; choose a folder without keys.json, inbox.db or its -wal, -shm and "
                                "-journal (or move them away)\n"), r.stderr
            with open(path) as f:
                assert f.read() == "the operator's\n"
            assert sorted(os.listdir(folder)) == [name], "a refused backup left files"
            os.unlink(path)
        r = run("backup", "arne", folder, d)
        assert r.returncode == 0, r
        # Served: no restore, whatever the state folder holds.
        r = run("restore", "arne", folder, d)
        assert r.returncode == 1 and "the running daemon (pid %d) serves arne" % d.proc.pid in r.stderr, r
        assert len(r.stderr.splitlines()) == 1
        # Not served, but the files are there: refused, and they stay.
        d.identities = []
        d.write_manifest([])
        assert "reload done" in d.reload().group(0)
        wait_for(lambda: d.find_log(r"arne: worker \d+ exited with status 0"), what="arne's worker to drain")
        target = os.path.join(d.state_dir, "arne")
        with open(os.path.join(target, "inbox.db"), "rb") as f:
            kept = f.read()
        r = run("restore", "arne", folder, d)
        assert r.returncode == 1 and r.stdout == "", r
        assert "exists already, and nothing is overwritten" in r.stderr and target in r.stderr, r
        with open(os.path.join(target, "inbox.db"), "rb") as f:
            assert f.read() == kept
        assert not any(n.startswith(".restoring.") for n in os.listdir(target))
        # A backup with a -wal beside it is not whole.
        with open(os.path.join(folder, "inbox.db-wal"), "wb") as f:
            f.write(b"x" * 100)
        r = run("restore", "marcus", folder, d)
        assert r.returncode == 1 and "inbox.db-wal: is beside the backup" in r.stderr, r
        assert not os.path.exists(os.path.join(d.state_dir, "marcus", "inbox.db"))
        # A backup folder without the identity's files.
        r = run("restore", "marcus", d.dir, d)
        assert r.returncode == 1 and "keys.json" in r.stderr, r
        r = run("backup", "nobody", os.path.join(d.dir, "other"), d)
        assert r.returncode == 1 and "nobody" in r.stderr, r
        assert d.stop() == 0


if __name__ == "__main__":
    main()
