"""
Headless Chromium driven over its DevTools protocol, for tests/test_browser.py.

How this works: Chromium started with ``--remote-debugging-pipe`` reads protocol
commands on its file descriptor 3 and writes replies and events on 4, each a JSON
message ended by a NUL byte. So no driver binary, no WebSocket library and no port:
the standard library and Debian's ``chromium`` package are all it takes. One page
target is attached in flat mode (its session id rides on each message). Reads are
synchronous with a deadline: ``call`` returns a command's result, keeping the
events that arrive meanwhile in ``events``; ``wait_event`` reads until one arrives.
A call or a wait that outlasts its deadline raises ``TimeoutError`` rather than
hanging the suite.

What a page asks for is seen in the protocol's Network events, the page's own
and its workers' (attached as they start, paused until their events are on). The
browser's proxy (``proxy_port``) for every host but the loopback one is the test's
own server, which refuses: nothing leaves the machine, not even what Chromium
fetches for itself (component updates, sign-in), which is no page's doing and is
not counted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]

# What a clean profile of Chromium would fetch by itself (updates, metrics, safe
# browsing, field trials): off, so every request the proxy sees comes from a page.
QUIET = [
    "--headless",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--disable-gpu",
    "--mute-audio",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    """The Chromium to run: $ANYIO_JOINSET_CHROMIUM, else Debian's ``chromium`` on PATH."""
    return os.environ.get("ANYIO_JOINSET_CHROMIUM") or shutil.which("chromium")


class ProtocolError(RuntimeError):
    """A DevTools command failed; the message is Chromium's."""


class Chromium:
    """One headless Chromium with one page (a tab) attached."""

    def __init__(self, executable: str, *, proxy_port: int, width: int = 1280) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="anyio-joinset-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = [
            *QUIET,
            f"--user-data-dir={self._profile.name}",
            f"--window-size={width},900",
            # Every host but the loopback one (which Chromium never proxies) goes to
            # the test's server, which refuses and records it.
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            "--remote-debugging-pipe",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI runs as root
            flags.append("--no-sandbox")
        # bash puts the two pipe ends on descriptors 3 and 4, where Chromium looks
        # for them (no preexec_fn; dash cannot name a descriptor above 9).
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self._process = subprocess.Popen(  # noqa: S603 - our own browser
            ["bash", "-c", script, executable, *flags, "about:blank"],  # noqa: S607
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[Message] = []
        self.session: str | None = None
        try:
            target = self.call("Target.createTarget", browser=True, url="about:blank")
            self.session = self.call(
                "Target.attachToTarget", browser=True, targetId=target["targetId"], flatten=True
            )["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
            self.call("Page.setLifecycleEventsEnabled", enabled=True)
            # The page's workers (the search index's) are attached as they start.
            self.call(
                "Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=True, flatten=True
            )
        except BaseException:
            self.close()
            raise

    # -- the protocol ------------------------------------------------------------

    def _send(self, method: str, params: Message, session: str | None) -> int:
        self._next_id += 1
        message: Message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        return self._next_id

    def _read(self, deadline: float) -> Message:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                msg = "Chromium did not answer in time."
                raise TimeoutError(msg)
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                msg = f"Chromium exited (code {self._process.poll()})."
                raise ProtocolError(msg)
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: Message = json.loads(raw)
        if message.get("method") == "Target.attachedToTarget":
            # A worker of the page, paused until we have seen to it: watch its
            # requests and its console too, then let it run.
            child = message["params"]["sessionId"]
            for method in ("Network.enable", "Runtime.enable", "Runtime.runIfWaitingForDebugger"):
                self._send(method, {}, child)
        return message

    def call(
        self, method: str, *, browser: bool = False, timeout: float = 30, **params: Any
    ) -> Message:
        """Send one command to the page (or to the browser itself), and return its result."""
        sent = self._send(method, params, None if browser else self.session)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == sent:
                if "error" in reply:
                    msg = f"{method}: {reply['error'].get('message')}"
                    raise ProtocolError(msg)
                result: Message = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_event(
        self,
        method: str,
        predicate: Callable[[Message], bool] = lambda _: True,
        timeout: float = 30,
    ) -> Message:
        """The first event ``method`` (already received or still to come) that matches."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method and predicate(event.get("params", {})):
                    return event
            seen = len(self.events)
            message = self._read(deadline)
            if "method" in message:
                self.events.append(message)

    # -- what the tests use --------------------------------------------------------

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        reply = self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            msg = f"{expression[:60]!r} raised {text}"
            raise ProtocolError(msg)
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15) -> Any:
        """Poll a JavaScript expression until it is truthy; its value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                msg = f"still falsy after {timeout} s: {expression}"
                raise TimeoutError(msg)
            time.sleep(0.05)

    def requests(self) -> list[str]:
        """The URL of every request the page and its workers sent since it was loaded."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
        ]

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait until its network is idle (scripts, search index, diagrams).

        Only this navigation's lifecycle events count (its loader id), never a late
        one of the page before.
        """
        self.events.clear()
        reply = self.call("Page.navigate", url=url)
        if "errorText" in reply:
            msg = f"{url}: {reply['errorText']}"
            raise ProtocolError(msg)
        loader = reply["loaderId"]
        self.wait_event(
            "Page.lifecycleEvent",
            lambda params: params["name"] == "networkIdle" and params["loaderId"] == loader,
        )

    def shadow_svgs(self, selector: str) -> list[int]:
        """For each element matching ``selector``: the SVG elements in its shadow root.

        Material draws each Mermaid diagram into a *closed* shadow root, which no script
        of the page can look into; the protocol can (``pierce``).
        """
        root = self.call("DOM.getDocument", depth=-1, pierce=True)["root"]
        hosts = self.call("DOM.querySelectorAll", nodeId=root["nodeId"], selector=selector)
        wanted = set(hosts["nodeIds"])
        counts: dict[int, int] = {}

        def count_svgs(node: Message) -> int:
            own = 1 if node.get("localName") == "svg" else 0
            return own + sum(count_svgs(child) for child in node.get("children", []))

        def walk(node: Message) -> None:
            if node["nodeId"] in wanted:
                counts[node["nodeId"]] = sum(count_svgs(s) for s in node.get("shadowRoots", []))
            for child in node.get("children", []) + node.get("shadowRoots", []):
                walk(child)

        walk(root)
        return [counts.get(node, 0) for node in hosts["nodeIds"]]

    def screenshot(self, path: Path, *, full_page: bool = True, max_height: int = 12000) -> None:
        """The whole page (up to ``max_height`` pixels), or what the window shows, as a PNG."""
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            clip = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], max_height),
                "scale": 1,
            }
            shot = self.call(
                "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
            )
        else:
            shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        """Ask Chromium to quit, and make sure it did."""
        with contextlib.suppress(ProtocolError, TimeoutError, OSError):
            self.call("Browser.close", browser=True, timeout=5)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._profile.cleanup()
