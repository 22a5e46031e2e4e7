"""Headless Chromium driven over the Chrome DevTools Protocol, for tests of
pages the server serves (the dashboard).

Chromium runs with --remote-debugging-pipe: the protocol's JSON messages go
over two pipes (its fd 3 reads commands, its fd 4 writes answers and events,
each message ended by a NUL byte), so no port and no websocket client are
needed. It runs in a session of its own, with its profile, HOME and TMPDIR
in a folder the caller gives (nothing in /tmp), and close() ends every
process of that session by pid."""

import base64
import fcntl
import json
import os
import queue
import signal
import threading
import time

CHROMIUM = "/usr/bin/chromium"


def available():
    return os.access(CHROMIUM, os.X_OK)


def _session_pids(sid):
    """Pids of the processes in session sid (zombies left out)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def _high_fd(fd):
    """fd moved to a number of 10 or more (close-on-exec), so that the child's
    fds 3 and 4 can be set from it without clobbering one with the other."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium. events holds every protocol event received
    (method, params, sessionId)."""

    def __init__(self, folder, width=1280, height=900, timeout=60):
        self.folder = folder
        self.timeout = timeout
        self.events = []
        self._answers = {}
        self._cond = threading.Condition()
        self._next_id = 0
        home = os.path.join(folder, "home")
        tmp = os.path.join(folder, "tmp")
        os.makedirs(home, exist_ok=True)
        os.makedirs(tmp, exist_ok=True)
        self.log_path = os.path.join(folder, "chromium.log")
        args = [CHROMIUM, "--headless=new", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={os.path.join(folder, 'profile')}",
                f"--window-size={width},{height}", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-breakpad", "--disable-crash-reporter",
                "--mute-audio", "--hide-scrollbars", "--no-proxy-server",
                "--enable-logging=stderr", "--v=0", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # the sandbox refuses to run as root
        env = dict(os.environ, HOME=home, TMPDIR=tmp, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_CACHE_HOME=os.path.join(home, ".cache"))
        cmd_r, self._cmd_w = os.pipe()
        self._ans_r, ans_w = os.pipe()
        cmd_r, ans_w = _high_fd(cmd_r), _high_fd(ans_w)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            self.pid = os.posix_spawn(CHROMIUM, args, env, setsid=True, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2),
                (os.POSIX_SPAWN_DUP2, cmd_r, 3), (os.POSIX_SPAWN_DUP2, ans_w, 4)])
        finally:
            os.close(log)
            os.close(cmd_r)
            os.close(ans_w)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # ---- the protocol

    def _read(self):
        buf = b""
        while True:
            try:
                data = os.read(self._ans_r, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                    else:
                        self.events.append((msg.get("method"), msg.get("params", {}),
                                            msg.get("sessionId")))
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    _closed = False

    def call(self, method, params=None, session=None, timeout=None):
        """Sends one command and returns its result (an error raises)."""
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AssertionError(f"no answer to {method} (chromium log: "
                                         f"{self.log_tail()})")
                self._cond.wait(left)
            answer = self._answers.pop(mid)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # ---- a page

    def new_page(self, width=1280, height=900):
        """A new tab at about:blank: its session id, with Runtime, Log and
        Page events on and the viewport set."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        return session

    def navigate(self, session, url):
        result = self.call("Page.navigate", {"url": url}, session=session)
        assert "errorText" not in result, result

    def evaluate(self, session, expression):
        """The value of a JavaScript expression in the page (JSON-able)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=session)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session):
        """The page as PNG bytes."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        return base64.b64decode(data)

    def page_errors(self, session):
        """What the page reported as errors: uncaught exceptions, console.error
        and console.assert calls, and the browser's error entries for it (a
        resource that failed, a Content-Security-Policy violation)."""
        found = []
        with self._cond:
            events = list(self.events)
        for method, params, sid in events:
            if sid != session:
                continue
            if method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                found.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console." + params["type"] + ": " +
                             " ".join(str(a.get("value", a.get("description")))
                                      for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                e = params["entry"]
                found.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
        return found

    def console_log(self):
        """The page console's lines Chromium logged to its stderr
        (--enable-logging=stderr): a second witness beside the protocol's
        events."""
        return [line for line in self.log_tail(n=1 << 20).splitlines() if ":CONSOLE" in line]

    # ---- the end

    def close(self, timeout=20):
        """Asks Chromium to quit, then kills by pid whatever of its session
        is left. Returns the pids that had to be killed."""
        try:
            self.call("Browser.close", timeout=10)
        except (AssertionError, OSError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (self._reap(block=False) and
                                                   not _session_pids(self.pid)):
            time.sleep(0.1)
        killed = _session_pids(self.pid)
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(block=True)
        # the others were the browser's children: init reaps them once killed
        deadline = time.monotonic() + timeout
        while _session_pids(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.close(self._cmd_w)
        self._reader.join(timeout=5)
        os.close(self._ans_r)
        return killed

    _reaped = False

    def _reap(self, block):
        """Whether the browser process has exited (and is reaped)."""
        if not self._reaped:
            self._reaped = os.waitpid(self.pid, 0 if block else os.WNOHANG)[0] != 0
        return self._reaped

    def left(self):
        return _session_pids(self.pid)
