"""The HTML report and dashboard in real headless Chromium (Debian's ``chromium``).

Two runs per page: one drives the DevTools protocol over ``--remote-debugging-pipe`` (a tiny
client below: NUL-separated JSON on fds 3/4) to prove the page loads with no console error, no
exception and no request other than the file itself; one takes a ``--screenshot`` at 1280x2000,
decoded with a small zlib PNG decoder, to prove the charts are drawn (the chart colours are on
the picture, and it has many colours, not a blank page).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from test_report_support import SINCE, UNTIL, cli, fill_known_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, user_data_dir: Path) -> None:
        assert CHROMIUM, "chromium is missing: apt-get install chromium"
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # Chromium reads commands on fd 3 and writes on fd 4
            # via fds >= 10 first, so a pipe end that already sits on 3 or 4 is not clobbered
            r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3, inheritable=True)
            os.dup2(w, 4, inheritable=True)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # close_fds=False: only fds marked inheritable reach Chromium, i.e. the two dup2'd
            # here (Python opens every other fd non-inheritable).
            preexec_fn=wire_fds, close_fds=False)  # noqa: PLW1509 - fds 3/4 need it
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):  # already gone: wait() below settles it
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def load_page(path: Path, profile: Path) -> dict[str, Any]:
    """Open ``path``; return the requests made, console/log errors and a few DOM facts."""
    dt = DevTools(profile)
    try:
        targets = dt.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        session = dt.call("Target.attachToTarget", {"targetId": page["targetId"],
                                                    "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            dt.call(f"{domain}.enable", session=session)
        dt.call("Page.navigate", {"url": path.as_uri()}, session=session)
        dt.wait_for("Page.loadEventFired")
        facts = dt.call("Runtime.evaluate", {"returnByValue": True, "expression": (
            "JSON.stringify({charts: document.querySelectorAll('svg.chart').length,"
            " marks: document.querySelectorAll('svg.chart rect, svg.chart circle').length,"
            " title: document.title, tables: document.querySelectorAll('table').length,"
            " text: document.body.innerText.slice(0, 4000)})")}, session=session)
        time.sleep(0.3)  # let late console messages arrive
        dt.call("Runtime.evaluate", {"expression": "1"}, session=session)
    finally:
        dt.close()
    events = dt.events
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    problems = [e for e in events if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled"
                    and e["params"]["type"] in ("error", "warning", "assert"))
                or (e.get("method") == "Log.entryAdded"
                    and e["params"]["entry"]["level"] in ("error", "warning"))]
    return {"requests": requests, "problems": problems,
            **json.loads(facts["result"]["value"])}


def screenshot(path: Path, png: Path, profile: Path) -> None:
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2000",
                    f"--screenshot={png}", path.as_uri()],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True)


def png_pixels(png: Path, max_rows: int) -> tuple[int, int, list[bytes]]:
    """(width, height, the first ``max_rows`` rows as RGB(A) bytes): a tiny PNG decoder."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, bytearray()
    width = height = 0
    channels = 3
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(min(height, max_rows)):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = prev[i]
                c = prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def colours(rows: list[bytes], channels: int = 3) -> set[tuple[int, ...]]:
    found = set()
    for line in rows[::3]:
        for i in range(0, len(line), channels * 2):
            found.add(tuple(line[i:i + 3]))
    return found


def _near(found: set[tuple[int, ...]], hex_colour: str, tol: int = 6) -> bool:
    target = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return any(all(abs(a - b) <= tol for a, b in zip(c, target, strict=True)) for c in found)


@pytest.fixture
def known_store(store: Path) -> Path:
    return fill_known_store(store)


def test_dashboard_loads_offline_without_errors_and_draws_charts(known_store: Path,
                                                                 tmp_path: Path):
    page = tmp_path / "dashboard.html"
    code, _out, err = cli("dashboard", "--store", str(known_store), "--since", SINCE,
                          "--until", UNTIL, "--output", str(page))
    assert code == 0, err
    html = page.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<script" not in html and "<link" not in html

    facts = load_page(page, tmp_path / "profile-cdp")
    assert facts["requests"] == [page.as_uri()], facts["requests"]
    assert facts["problems"] == []
    assert facts["charts"] >= 12 and facts["marks"] > 30
    for text in ("Usage", "Cost", "Latency", "Errors", "$0.0381", "30.0%", "corp-llm-13b"):
        assert text in facts["text"], text

    png = tmp_path / "dashboard.png"
    screenshot(page, png, tmp_path / "profile-shot")
    width, height, rows = png_pixels(png, max_rows=1000)
    assert (width, height) == (1280, 2000)
    found = colours(rows)
    assert len(found) > 40, "the screenshot looks blank"
    # the bar and line colours of the first charts are on the picture
    for colour in ("#2563eb", "#dc2626", "#ea580c"):
        assert _near(found, colour), colour


@pytest.mark.parametrize("kind", ["cost", "latency"])
def test_single_report_html_is_self_contained(known_store: Path, tmp_path: Path, kind: str):
    page = tmp_path / f"{kind}.html"
    code, _out, err = cli("report", kind, "--store", str(known_store), "--since", SINCE,
                          "--until", UNTIL, "--format", "html", "--output", str(page))
    assert code == 0, err
    facts = load_page(page, tmp_path / "profile")
    assert facts["requests"] == [page.as_uri()]
    assert facts["problems"] == []
    assert facts["charts"] >= 3
    assert facts["title"] == f"LLM {kind} report"
