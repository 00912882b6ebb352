"""Every worker starts from a clean image of the binary: the worker template,
executed once and never touching traffic, forks them. A worker started after
traffic (a restart, an identity added by SIGHUP) holds no byte another
identity's clients sent, nor does the template; workers do not share the
supervisor's address-space layout; processes are titled by role and slug.

Reads other processes' memory (/proc/PID/mem): needs root; skipped otherwise."""
import os
import re
import secrets
import signal

from posta import Daemon, memory_holds, test, main, wait_for

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
NORA = {"slug": "nora", "url": "http://nora.local:8080", "name": "Nora"}


def template_pid(d):
    """The worker template: the supervisor's child titled so."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == d.proc.pid and cmdline(int(entry)) == b"posta-server: worker template\0":
                    return int(entry)
            except (OSError, ValueError, IndexError):
                continue
    raise AssertionError("no worker template among the supervisor's children")


def api_request_to_marcus(d):
    """One API request to marcus with his token and a marker; returns both, as bytes."""
    token = d.token("marcus")
    assert token.startswith("posta_"), token
    marker = "x-marker-" + secrets.token_hex(16)
    r = d.request("marcus.local:8080", path="/api/messages",
                  headers={"Authorization": f"Bearer {token}", "X-Trace-Marker": marker})
    assert r.status == 200, r
    return token.encode(), marker.encode()


def assert_holds_none_of(pid, slug, url, secrets_):
    found = memory_holds(pid, [url.encode(), *secrets_])
    # The scan works: the worker's own identity is in its memory.
    assert url.encode() in found, f"{slug}'s own URL not found in its memory: the scan is broken"
    for secret in secrets_:
        assert secret not in found, f"{slug}'s process {pid} holds {secret[:12]!r}... sent to marcus"


def assert_template_holds_none_of(d, secrets_):
    pid = template_pid(d)
    found = memory_holds(pid, [b"posta-server: worker template", *secrets_])
    assert b"posta-server: worker template" in found, "the template's own title not found: the scan is broken"
    for secret in secrets_:
        assert secret not in found, f"the worker template {pid} holds {secret[:12]!r}... sent to marcus"


def needs_root():
    if os.geteuid() != 0:
        print("skipped: reading another process's memory (/proc/PID/mem) needs root")
        return True
    return False


@test
def a_worker_restarted_after_traffic_holds_neither_token_nor_marker_of_another_identity():
    if needs_root():
        return
    with Daemon([ARNE, MARCUS]) as d:
        old = d.worker_pid("arne")
        sent = api_request_to_marcus(d)
        mark = len(d.log())
        os.kill(old, signal.SIGKILL)
        new = d.worker_pid("arne", start=mark)
        assert new != old
        assert_holds_none_of(new, "arne", ARNE["url"], sent)
        assert_template_holds_none_of(d, sent)


@test
def an_identity_added_by_sighup_after_traffic_holds_neither_token_nor_marker():
    if needs_root():
        return
    with Daemon([ARNE, MARCUS]) as d:
        sent = api_request_to_marcus(d)
        mark = len(d.log())
        d.write_manifest([ARNE, MARCUS, NORA])
        d.proc.send_signal(signal.SIGHUP)
        pid = d.worker_pid("nora", start=mark)
        assert_holds_none_of(pid, "nora", NORA["url"], sent)
        assert_template_holds_none_of(d, sent)


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


@test
def processes_are_titled_by_role_and_slug():
    with Daemon([ARNE, MARCUS]) as d:
        assert cmdline(d.proc.pid) == b"posta-server: supervisor\0", cmdline(d.proc.pid)
        assert comm(d.proc.pid) == "posta-server"
        for slug in ("arne", "marcus"):
            pid = d.worker_pid(slug)
            assert cmdline(pid) == f"posta-server: worker {slug}\0".encode(), cmdline(pid)
            assert comm(pid) == f"posta:{slug}", comm(pid)
        assert comm(template_pid(d)) == "posta:template"


def mapping_starts(pid):
    """The lowest address of each mapped file, and of the heap and the stack."""
    starts = {}
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) > 5:
                starts.setdefault(fields[5], int(fields[0].split("-")[0], 16))
    return starts


@test
def workers_do_not_share_the_supervisors_address_space_layout():
    """The template is executed, so it and the workers it forks have their
    own layout; the workers share the template's (posta-server(8))."""
    if needs_root():
        return  # a non-dumpable worker's maps are root's to read
    with open("/proc/sys/kernel/randomize_va_space") as f:
        if f.read().strip() == "0":
            print("skipped: ASLR is off on this machine (kernel.randomize_va_space = 0)")
            return
    with Daemon([ARNE, MARCUS]) as d:
        supervisor = mapping_starts(d.proc.pid)
        binary = os.path.realpath(os.environ["POSTA_SERVER"])
        libc = next(name for name in supervisor if re.search(r"/libc\.so", name))
        for slug in ("arne", "marcus"):
            worker = mapping_starts(d.worker_pid(slug))
            for name in (binary, libc, "[stack]"):
                assert name in supervisor and name in worker, (name, sorted(worker))
                assert supervisor[name] != worker[name], f"{name} at {worker[name]:#x} in the supervisor and {slug}"


def executable_anonymous_mappings(pid):
    """AnonHugePages (KiB) of each executable mapping that no file backs."""
    found, current = [], None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", fields[0]):
                current = fields[1] == "r-xp" and len(fields) == 5
            elif current and fields[0] == "AnonHugePages:":
                found.append(int(fields[1]))
    return found


@test
def the_template_puts_its_code_in_huge_pages_that_its_workers_share():
    """With transparent huge pages on, the template moves posta-server's text
    into huge pages before it forks (src/worker/huge_text.h): a worker's
    start then touches its code 2 MiB at a time."""
    if needs_root():
        return
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        if "[never]" in f.read():
            print("skipped: transparent huge pages are off on this machine")
            return
    with Daemon([ARNE]) as d:
        template = executable_anonymous_mappings(template_pid(d))
        worker = executable_anonymous_mappings(d.worker_pid("arne"))
        assert len(template) == 1 and template[0] >= 2048, template
        assert worker == template, (worker, template)
        # The code runs from there: the worker serves.
        assert d.request("arne.local:8080").status == 200


if __name__ == "__main__":
    main()
