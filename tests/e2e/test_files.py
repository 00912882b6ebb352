"""Files are what they claim: an identity's folder, keys.json and inbox.db
(and SQLite's -wal beside it) are opened without following symlinks and must
belong to the daemon's user. Anything else is that identity's start error
with the path and the fix; the other identities serve on. A symlink in an
identity's folder is what a compromised worker would plant to make its next
start, before the sandbox holds, open another identity's key or messages."""
import os
import shutil

from posta import Daemon, test, main

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}


def with_state_then(tamper):
    """Starts arne and marcus once so both have their files, stops, lets
    `tamper(d)` change marcus's, and starts again; returns the running
    daemon (a context manager)."""
    d = Daemon([ARNE, MARCUS])
    d.start()
    assert d.request("marcus.local:8080").status == 200
    d.stop()
    tamper(d)
    d.lines.clear()
    d.start(wait_ready=False)
    d.autostart = False  # the `with` only stops it
    return d


def assert_marcus_refused(d, pattern):
    d.wait_log(r"marcus\[\d+\]: cannot start: " + pattern, what="marcus's start error")
    d.worker_pid("arne")
    assert d.request("arne.local:8080").status == 200
    assert d.request("marcus.local:8080").status == 503
    assert not d.find_log(r"marcus: worker \d+ ready"), d.log()


def folder(d, slug):
    return os.path.join(d.state_dir, slug)


def linking_marcus_to_arnes(name):
    """A tamper for with_state_then: marcus's file `name` becomes a symlink
    to arne's."""
    def tamper(d):
        os.unlink(os.path.join(folder(d, "marcus"), name))
        os.symlink(os.path.join(folder(d, "arne"), name), os.path.join(folder(d, "marcus"), name))
    return tamper


@test
def a_symlinked_keys_json_is_refused():
    with with_state_then(linking_marcus_to_arnes("keys.json")) as d:
        assert_marcus_refused(d, r".*marcus/keys\.json.*is a symlink; keys\.json must be a file of its own")


@test
def a_symlinked_inbox_db_is_refused():
    with with_state_then(linking_marcus_to_arnes("inbox.db")) as d:
        assert_marcus_refused(d, r".*marcus/inbox\.db.*is a symlink; inbox\.db must be a file of its own")


@test
def a_symlinked_write_ahead_log_is_refused():
    def link_a_wal(d):
        target = os.path.join(d.dir, "elsewhere-wal")
        open(target, "wb").close()
        wal = os.path.join(folder(d, "marcus"), "inbox.db-wal")
        if os.path.exists(wal):
            os.unlink(wal)
        os.symlink(target, wal)
    with with_state_then(link_a_wal) as d:
        assert_marcus_refused(d, r".*marcus/inbox\.db-wal: is not a regular file \(a symlink\?\); move it away")


@test
def a_symlinked_identity_folder_is_refused():
    def link_the_folder(d):
        moved = os.path.join(d.dir, "marcus-elsewhere")
        shutil.move(folder(d, "marcus"), moved)
        os.symlink(moved, folder(d, "marcus"))
    with with_state_then(link_the_folder) as d:
        assert_marcus_refused(d, r".*marcus.*is a symlink; it must be a real folder in state_dir")


@test
def a_keys_json_of_another_user_is_refused():
    if os.geteuid() != 0:
        print("skipped: giving a file to another user needs root")
        return
    def give_away(d):
        os.chown(os.path.join(folder(d, "marcus"), "keys.json"), 4242, 4242)
    with with_state_then(give_away) as d:
        assert_marcus_refused(d, r".*marcus/keys\.json.*is owned by uid 4242, not by the user posta-server runs as "
                                 r"\(uid 0\); fix: chown 0 ")


if __name__ == "__main__":
    main()
