"""One ACME round trip, as the README's "Certificates with an ACME client"
tells an operator to make it: Debian's pebble (a real ACME server) and
Debian's dehydrated in webroot mode, its WELLKNOWN set per domain to the
identity's acme-challenge/ folder. pebble's HTTP-01 validation really fetches
the challenge from the daemon's plain listener (no PEBBLE_VA_ALWAYS_VALID);
the certificate it issues, installed into tls/ and reloaded with SIGHUP, is
then what the identity's TLS listener serves, verified against pebble's root.

Every name is loopback: arne.local (the identity) and pebble.local (the ACME
server's API, whose certificate the e2e test CA issues: Debian's pebble
package does not ship upstream's test/certs) in /etc/hosts."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import urllib.request

from posta import die_with_parent, free_port, loopback_names, test, main, wait_listening
from tls_setup import Pki, start, tls_daemon

ARNE = {"slug": "arne", "url": "https://arne.local", "name": "Arne"}


class Pebble:
    """Debian's pebble on 127.0.0.1, its API's certificate from `pki`,
    validating HTTP-01 challenges on `http_port` of the identifier's
    address."""

    def __init__(self, directory, pki, http_port):
        self.port, self.management_port = free_port(), free_port()
        chain, key = pki.issue("pebble.local")
        config = os.path.join(directory, "pebble.json")
        with open(config, "w") as f:
            json.dump({"pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": chain, "privateKey": key,
                "httpPort": http_port, "tlsPort": free_port(),  # nothing listens there: no TLS-ALPN-01
                "ocspResponderURL": "", "externalAccountBindingRequired": False}}, f)
        # No sleep before a validation, no nonce refused at random (dehydrated
        # would give up on one): the validation itself is left as it is.
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self.log_path = os.path.join(directory, "pebble.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["pebble", "-config", config], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=directory, preexec_fn=die_with_parent)
        self.directory_url = f"https://pebble.local:{self.port}/dir"
        self.context = ssl.create_default_context(cafile=pki.ca)
        wait_listening(self.proc, [self.port, self.management_port], "pebble", self.output)

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def root(self):
        """pebble's root certificate (PEM), made afresh at its start."""
        url = f"https://pebble.local:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=self.context, timeout=10) as r:
            return r.read().decode()

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def dehydrated(directory, pki, pebble, domain, wellknown):
    """A dehydrated setup as the README's: domains.txt, and WELLKNOWN for the
    domain in DOMAINS_D. Returns a function running it with arguments."""
    base = os.path.join(directory, "dehydrated")
    os.makedirs(os.path.join(base, "domains.d"))
    # The global WELLKNOWN, as Debian's /etc/dehydrated/config has it (the
    # package makes the folder): must exist, and must not be where the
    # challenge goes.
    os.makedirs(os.path.join(base, "acme-challenges"))
    with open(os.path.join(base, "domains.txt"), "w") as f:
        f.write(domain + "\n")
    with open(os.path.join(base, "domains.d", domain), "w") as f:
        f.write(f"WELLKNOWN={wellknown}\n")
    config = os.path.join(base, "config")
    with open(config, "w") as f:
        f.write(f'CA="{pebble.directory_url}"\nBASEDIR="{base}"\nDOMAINS_TXT="{base}/domains.txt"\n'
                f'WELLKNOWN="{base}/acme-challenges"\nDOMAINS_D="{base}/domains.d"\nKEY_ALGO=prime256v1\nKEYSIZE=2048\n')
    # dehydrated speaks to the ACME server through curl, which trusts the
    # bundle CURL_CA_BUNDLE names: the test CA that issued pebble's API
    # certificate.
    env = dict(os.environ, CURL_CA_BUNDLE=pki.ca)

    def run(*args):
        r = subprocess.run(["dehydrated", "--config", config, *args], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0, f"dehydrated {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r.stdout
    return run, os.path.join(base, "certs", domain)


def install(source, target, mode):
    """`install -m MODE source target`: a new file renamed over the old one."""
    temp = target + ".new"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f, open(source, "rb") as s:
        f.write(s.read())
    os.rename(temp, target)


@test
def a_certificate_from_pebble_by_http_01_is_served_after_sighup():
    if not shutil.which("pebble") or not shutil.which("dehydrated"):
        raise AssertionError("pebble and dehydrated are needed: bash scripts/install-deps.sh")
    if not loopback_names(["arne.local", "pebble.local"]):
        print("skipped: needs root to add arne.local and pebble.local to /etc/hosts")
        return
    # pebble validates on the plain listener's port, so it is fixed up front.
    plain_port = free_port()
    d, pki, _ = tls_daemon([ARNE], ())  # no certificate yet: arne's TLS connections are closed
    d.args += ["--listen", f"127.0.0.1:{plain_port}"]
    identity_dir = os.path.join(d.state_dir, "arne")
    wellknown = os.path.join(identity_dir, "acme-challenge")
    with start(d):
        d.wait_log(r"arne\[\d+\]: no usable TLS certificate \(at start\)")
        os.makedirs(wellknown, mode=0o755)
        pebble = Pebble(d.dir, pki, plain_port)
        try:
            run, certs = dehydrated(d.dir, pki, pebble, "arne.local", wellknown)
            run("--register", "--accept-terms")
            out = run("--cron")
            assert "Done!" in out, out
            root = pebble.root()
        finally:
            pebble.close()
        # The validation went to the daemon's plain listener, the only one on
        # that port, and found there what dehydrated had written into the
        # identity's folder (then removed again).
        validations = re.findall(r"Attempting to validate w/ HTTP: (\S+)", pebble.output())
        assert validations and all(v.startswith(f"http://arne.local:{plain_port}/.well-known/acme-challenge/")
                                   for v in validations), pebble.output()
        assert "set VALID by completed challenge" in pebble.output(), pebble.output()
        assert os.listdir(wellknown) == [], os.listdir(wellknown)

        tls_dir = os.path.join(identity_dir, "tls")
        os.makedirs(tls_dir, mode=0o700)
        install(os.path.join(certs, "privkey.pem"), os.path.join(tls_dir, "privkey.pem"), 0o600)
        install(os.path.join(certs, "fullchain.pem"), os.path.join(tls_dir, "fullchain.pem"), 0o644)
        mark = len(d.log())
        assert "reload done" in d.reload().group(0)
        d.wait_log(r"arne\[\d+\]: TLS certificate .* loaded", start=mark)

        with open(os.path.join(certs, "cert.pem")) as f:
            issued = ssl.PEM_cert_to_DER_cert(f.read())
        context = ssl.create_default_context(cadata=root)
        with socket.create_connection(("127.0.0.1", d.tls_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="arne.local") as s:
                assert s.getpeercert(binary_form=True) == issued, "arne does not serve the certificate pebble issued"
                s.sendall(b"GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert b'"url":"https://arne.local"' in answer, answer
        assert d.stop() == 0


if __name__ == "__main__":
    main()
