"""A small client of the Chrome DevTools Protocol for the browser tests: it
starts Debian's chromium headless with a fresh profile, opens one page and
drives it (navigate, evaluate, wait for a condition, screenshot). It speaks
over Debian's python3-websocket (run these tests with Debian's python3).

The browser may reach loopback only: every other name fails to resolve, and
its background services (updates, sync, safe browsing) are off.
Refs: https://chromedevtools.github.io/devtools-protocol/ (Target, Page,
Runtime, Network domains).
"""
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import websocket  # Debian: python3-websocket

CHROMIUM = os.environ.get("CHROMIUM", "chromium")

FLAGS = [
    "--headless=new",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,InterestFeedContentSuggestions",
    "--metrics-recording-only",
    "--no-pings",
    "--password-store=basic",
    "--use-mock-keychain",
    # Loopback only: any name but these fails, so nothing leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--window-size=1100,900",
]


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless chromium with one page. Use as a context manager."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="posta-chromium-")
        flags = list(FLAGS)
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # chromium's own sandbox refuses to run as root
        self.proc = subprocess.Popen(
            [CHROMIUM, *flags, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
        self.stderr = []
        endpoint = self._wait_for_endpoint()
        self.ws = websocket.create_connection(endpoint, timeout=30, enable_multithread=True)
        self.next_id = 0
        self.replies = {}
        self.events = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.page(f"{domain}.enable")

    def _wait_for_endpoint(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr.append(line.rstrip("\n"))
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                threading.Thread(target=self._drain_stderr, daemon=True).start()
                return match.group(1)
        raise BrowserError("chromium did not open its DevTools endpoint:\n" + "\n".join(self.stderr[-20:]))

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def _read(self):
        while True:
            try:
                message = json.loads(self.ws.recv())
            except Exception:  # closed
                with self.cond:
                    self.cond.notify_all()
                return
            with self.cond:
                if "id" in message:
                    self.replies[message["id"]] = message
                else:
                    self.events.append(message)
                self.cond.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
        return False

    # -- protocol ------------------------------------------------------------

    def command(self, method, session=None, timeout=30, **params):
        with self.cond:
            self.next_id += 1
            ident = self.next_id
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        with self.cond:
            while ident not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"{method}: no answer within {timeout}s")
                self.cond.wait(left)
            reply = self.replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, method, **params):
        return self.command(method, session=self.session, **params)

    def events_named(self, method):
        with self.cond:
            return [e["params"] for e in self.events if e.get("method") == method]

    # -- what a test does -------------------------------------------------------

    def navigate(self, url):
        self.page("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && location.href === " + json.dumps(url), what=f"{url} to load")

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait(self, expression, timeout=10.0, what=None):
        """Polls a JavaScript expression until it is truthy; returns its value
        (true for an element, which does not cross the protocol by value)."""
        deadline = time.monotonic() + timeout
        probe = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        while True:
            value = self.evaluate(probe)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout}s waiting for {what or expression}")
            time.sleep(0.05)

    def click(self, selector):
        """Clicks the element as a mouse would, at its centre."""
        box = self.evaluate(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: "center"}});
            const r = e.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2}};
        }})()""")
        if not box:
            raise BrowserError(f"nothing to click at {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def type_into(self, selector, text):
        """Focuses a field and types `text` into it, as a keyboard would."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.page("Input.insertText", text=text)

    def key(self, name):
        """Presses and releases one key: "Tab", "Enter", "Escape"."""
        codes = {"Tab": 9, "Enter": 13, "Escape": 27}
        for kind in ("keyDown", "keyUp"):
            self.page("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=codes[name],
                      text="\r" if name == "Enter" and kind == "keyDown" else "")

    def cookies(self):
        return self.page("Network.getCookies")["cookies"]

    def screenshot(self, path):
        data = self.page("Page.captureScreenshot", format="png")["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def errors(self):
        """Uncaught exceptions and console errors the page reported."""
        found = [e["exceptionDetails"].get("exception", {}).get("description") or e["exceptionDetails"].get("text")
                 for e in self.events_named("Runtime.exceptionThrown")]
        for call in self.events_named("Runtime.consoleAPICalled"):
            if call.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in call.get("args", [])))
        return found
