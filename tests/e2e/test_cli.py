"""The command line: flags of `serve`, `check`, `--version`."""
import os
import subprocess
import tempfile

from posta import BINARY, Daemon, test, main


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)


@test
def version_prints_the_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("posta-server "), r


@test
def removed_single_tenant_flags_are_rejected():
    for flag in ("--url", "--keys", "--db", "--name"):
        r = run("serve", flag, "x", "--listen", "127.0.0.1:0", "--manifest", "/dev/null")
        assert r.returncode != 0, (flag, r)
        assert flag in r.stderr, (flag, r.stderr)


@test
def serve_help_shows_each_default():
    r = run("serve", "--help")
    assert r.returncode == 0
    assert "/etc/posta/identities.toml" in r.stdout and "127.0.0.1:8080" in r.stdout, r.stdout
    for flag in ("--listen", "--manifest", "--acl", "--rate-per-minute", "--config"):
        assert flag in r.stdout, flag


@test
def bad_rate_and_missing_acl_are_rejected():
    assert run("serve", "--rate-per-minute", "-1", "--manifest", "/dev/null").returncode != 0
    r = run("serve", "--acl", "/nonexistent/acl.toml", "--manifest", "/dev/null")
    assert r.returncode != 0 and "/nonexistent/acl.toml" in r.stderr, r


@test
def check_prints_every_error_with_file_and_line():
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, "identities.toml")
        with open(manifest, "w") as f:
            f.write('[[identity]]\nslug = "arne"\nurl = "http://arne.local"\nname = "Arne"\n\n'
                    '[[identity]]\nslug = "arne"\nurl = "ftp://x"\nname = "Dup"\ncolour = "red"\n')
        r = run("check", "--manifest", manifest)
        assert r.returncode != 0
        lines = [l for l in r.stderr.splitlines() if l.startswith(manifest + ":")]
        assert len(lines) >= 3, r.stderr  # duplicate slug, bad url, unknown key
        assert any(":6:" in l or ":7:" in l for l in lines), r.stderr
        assert any("colour" in l for l in lines), r.stderr


@test
def check_accepts_an_empty_manifest_and_a_good_config():
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, "identities.toml")
        open(manifest, "w").close()
        config = os.path.join(tmp, "posta.toml")
        with open(config, "w") as f:
            f.write('head_timeout = "250ms"\ndelivery_retry_max = "6h"\nlog_format = "json"\n')
        r = run("check", "--manifest", manifest, "--config", config)
        assert r.returncode == 0, r
        assert "0 identities" in r.stdout, r.stdout


@test
def serve_refuses_a_bad_manifest_naming_file_and_line():
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, "identities.toml")
        with open(manifest, "w") as f:
            f.write('[[identity]]\nslug = "Bad Slug"\nurl = "http://a.local"\nname = "A"\n')
        r = run("serve", "--listen", "127.0.0.1:0", "--manifest", manifest)
        assert r.returncode == 1, r
        assert f"{manifest}:2" in r.stderr, r.stderr


@test
def serve_refuses_a_listen_address_it_cannot_bind():
    with Daemon([]) as d:
        r = run("serve", "--listen", f"127.0.0.1:{d.port}", "--manifest", d.manifest, "--config", d.config_path)
        assert r.returncode == 1 and "bind" in r.stderr, r
    r = run("serve", "--listen", "localhost:80", "--manifest", "/dev/null")
    assert r.returncode == 1 and "localhost:80" in r.stderr, r


if __name__ == "__main__":
    main()
