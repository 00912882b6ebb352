"""The worker sandbox holds: from inside arne's worker, marcus's keys.json
cannot be opened and no program can be run, while the daemon keeps serving.
Needs a build with -Dsandbox_probe=true (as .ci/run makes); skipped otherwise."""
import os
import sys

from posta import Daemon, test, main

ARNE = {"slug": "arne", "url": "http://arne.local:8080", "name": "Arne"}
MARCUS = {"slug": "marcus", "url": "http://marcus.local:8080", "name": "Marcus"}
PROBE = "/.posta-debug/sandbox-probe?path="


def probe(d, host, path):
    r = d.request(host, path=PROBE + path)
    if r.status == 404:
        print("skipped: this build has no sandbox probe (-Dsandbox_probe=true)")
        sys.exit(77)
    assert r.status == 200, r
    return r.json()


@test
def a_worker_cannot_read_another_identitys_keys_or_run_a_program():
    with Daemon([ARNE, MARCUS]) as d:
        own = probe(d, "arne.local", os.path.join(d.state_dir, "arne", "keys.json"))
        assert own["open"] == "ok", own  # the probe can tell success from failure
        other = probe(d, "arne.local", os.path.join(d.state_dir, "marcus", "keys.json"))
        assert other["open"] == "EACCES", other
        assert other["exec"] in ("EACCES", "EPERM") or other["exec"].startswith("killed by signal"), other
        assert probe(d, "arne.local", "/etc/shadow")["open"] == "EACCES"
        # Both identities are still served.
        assert d.request("marcus.local").status == 200
        assert d.request("arne.local").status == 200


@test
def with_the_sandbox_off_the_worker_says_so_and_can_read_everything():
    with Daemon([ARNE, MARCUS], config={"sandbox": False}) as d:
        other = probe(d, "arne.local", os.path.join(d.state_dir, "marcus", "keys.json"))
        assert other["open"] == "ok" and other["exec"] == "ok", other
        assert d.find_log(r"arne\[\d+\]: SANDBOX DISABLED"), d.log()


if __name__ == "__main__":
    main()
