"""TLS for the end-to-end tests (test_tls.py, test_sessions.py): a test CA
that issues certificates for identities' hosts with the `openssl` command and
installs them into an identity's tls/ folder as an operator's ACME client
would, a daemon with a TLS listener, and clients that trust the CA."""
import os
import re
import socket
import ssl
import subprocess

from posta import Daemon


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA and leaf certificates for host names, under `folder`."""

    def __init__(self, folder):
        self.dir = os.path.join(folder, "pki")
        os.makedirs(self.dir)
        self.ca = os.path.join(self.dir, "ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=posta test CA", cwd=self.dir)
        self.count = 0

    def issue(self, host):
        """A new key and certificate for `host`: (chain PEM path, key path)."""
        self.count += 1
        name = f"{host}-{self.count}"
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={host}", cwd=self.dir)
        with open(os.path.join(self.dir, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{host}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=self.dir)
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def install(self, daemon, slug, host):
        """Issues a certificate for `host` into `slug`'s tls/ folder; returns
        the DER of the certificate and the private scalar of its key."""
        chain, key = self.issue(host)
        folder = os.path.join(daemon.state_dir, slug, "tls")
        os.makedirs(os.path.join(daemon.state_dir, slug), mode=0o700, exist_ok=True)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        for source, target in ((chain, "fullchain.pem"), (key, "privkey.pem")):
            with open(source, "rb") as f:
                data = f.read()
            # Replaced as an operator's ACME client does: a new file renamed
            # over the old one.
            temp = os.path.join(folder, target + ".new")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.rename(temp, os.path.join(folder, target))
        with open(chain) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return der, private_scalar(key)


def private_scalar(key_path):
    """The 32 bytes of a P-256 private key, as `openssl pkey -text` prints them."""
    text = subprocess.run(["openssl", "pkey", "-in", key_path, "-text", "-noout"], check=True,
                          capture_output=True, text=True, timeout=30).stdout
    hex_lines = re.search(r"priv:\n((?:\s+[0-9a-f:]+\n)+)", text).group(1)
    raw = bytes.fromhex(re.sub(r"[\s:]", "", hex_lines))
    return raw[-32:].rjust(32, b"\0")


def tls_daemon(identities, certified, config=None):
    """A daemon with a plain and a TLS listener, not started yet, and a test
    CA that issued a certificate into the tls/ folder of each slug of
    `certified` (named after its URL's host). Returns the daemon, the Pki
    and, by slug, what Pki.install returned."""
    d = Daemon(identities, config=config, args=["--listen", "https://127.0.0.1:0"], autostart=False)
    pki = Pki(d.dir)
    installed = {slug: pki.install(d, slug, f"{slug}.local") for slug in certified}
    return d, pki, installed


def start(d):
    d.start()
    m = d.wait_log(r"listening on https://127\.0\.0\.1:(\d+)", what="the TLS listening line")
    d.tls_port = int(m.group(1))
    return d


def client_context(pki, maximum=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def tls_connect(d, pki, server_name, maximum=None, check_hostname=True):
    ctx = client_context(pki, maximum)
    if not check_hostname:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise
