"""`xero-inspector web` in a real headless browser: Debian's chromium, driven by selenium through
the system's chromedriver. The page draws the terminal on a canvas (xterm.js), so what it shows is
read from the bytes the page's socket hands xterm.js, captured in the page itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from inspector.samples.mock_xero import TENANTS, MockXero
from inspector.samples.traffic import fill

from inspector.proxy.spawn import free_port
from inspector.store.database import open_db
from tests.helpers import ROOT, WAIT, ProxyProcess, client, rows, wait_for_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver (.ci/run installs them)"
    ),
]
XPM = "https://api.xero.com/practicemanager/3.0"

# Runs before the page's own scripts: every frame the terminal socket receives is decoded and kept.
CAPTURE = """
window.__screen = "";
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Native(...args);
  const decoder = new TextDecoder();
  ws.addEventListener("message", (e) => {
    if (e.data instanceof ArrayBuffer) window.__screen += decoder.decode(new Uint8Array(e.data), {stream: true});
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""
ANSI = re.compile(
    r"\x1b\[[0-9;?<>=]{0,64}[A-Za-z~]|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>78]"
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "flows.db"
    with open_db(path) as db:
        fill(db, 60)
    return path


@pytest.fixture
def served(recording: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:  # a file, not a pipe: the server logs every request
        server = subprocess.Popen(
            [sys.executable, "-m", "inspector", "web", "--db", str(recording), "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield _page(f"http://127.0.0.1:{port}", lambda: server.poll() is None or log.read_text())
    finally:
        server.terminate()
        server.wait(timeout=WAIT)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE})
        yield driver
    finally:
        driver.quit()


def _page(url: str, alive: Callable[[], bool | str] = lambda: True) -> str:
    """``url`` once it serves the page; ``alive`` says False (or the server's log) once it has died."""
    deadline = time.monotonic() + WAIT
    while True:
        assert alive() is True, alive()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"nothing served {url}"
        time.sleep(0.1)


def screen_text(driver: object) -> str:
    return ANSI.sub(" ", str(driver.execute_script("return window.__screen")))  # type: ignore[attr-defined]


def wait_for(driver: object, pattern: str, since: int = 0) -> re.Match[str]:
    deadline = time.monotonic() + WAIT
    while (m := re.search(pattern, screen_text(driver)[since:])) is None:
        assert time.monotonic() < deadline, f"the page never showed {pattern!r}: {screen_text(driver)[-3000:]!r}"
        time.sleep(0.2)
    return m


def test_the_browser_as_a_web_page_lists_flows_and_filters_them(
    served: str, browser: object, recording: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(served)  # type: ignore[attr-defined]
    total = rows(recording, "select count(*) n from flows")[0]["n"]
    wait_for(driver, rf"{total} flows")  # the status line: the whole list is counted
    wait_for(driver, r"RESOURCE/OP")  # the list's header
    terminal = driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")  # type: ignore[attr-defined]
    shown = len(screen_text(driver))
    terminal.send_keys("/")
    # Textual hands each key to the focused widget's queue: keys sent before "/" has moved the
    # focus would go to the list. The box's cursor on its placeholder says it has the focus.
    wait_for(driver, r"f\s+ilter, e\.g\.", since=shown)
    terminal.send_keys("~api accounting\n")
    accounting = rows(recording, "select count(*) n from flows where family like 'accounting-%'")[0]["n"]
    assert 0 < accounting < total
    wait_for(driver, rf"{accounting} flows? match(es)? '~api accounting'")
    shown = len(screen_text(driver))
    terminal.send_keys("c")  # copy as curl: in a page, the clipboard is the web browser's to give
    wait_for(driver, r"offered to the web browser's clipboard", since=shown)
    wait_for(driver, r"curl (-X [A-Z]+ )?https://api\.xero\.com/api\.xro/2\.0/", since=shown)
    shot = tmp_path / "web.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000  # type: ignore[attr-defined]


def test_web_refuses_an_address_beyond_loopback_and_a_missing_file(recording: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inspector", "web", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    remote = run("--db", str(recording), "--listen", "0.0.0.0:8081")
    assert remote.returncode == 2 and "refusing to listen on 0.0.0.0" in remote.stderr
    missing = run("--db", str(recording.parent / "nope.db"))
    assert missing.returncode == 2 and missing.stderr.strip().endswith("no such database")


def test_up_web_runs_the_proxy_and_the_page_together(
    tmp_path: Path, confdir: Path, mock: MockXero, browser: object
) -> None:
    up = ProxyProcess(tmp_path, confdir, command=["unused"])
    web = free_port()
    up.cmd = [
        *(sys.executable, "-m", "inspector", "up", "--web", "--db", str(up.db), "--confdir", str(confdir)),
        *("--listen", f"127.0.0.1:{up.port}", "--web-listen", f"127.0.0.1:{web}"),
        *("--redirect", mock.url, "--upstream-ca", str(mock.ca_path)),
    ]
    up.start()  # waits for the proxy's port
    try:
        with client(up) as http:  # an app's call, with no token: the mock's 401, recorded
            answer = http.get(f"{XPM}/client.api/list", headers={"xero-tenant-id": TENANTS[0].id})
        assert answer.status_code == 401
        wait_for_rows(up.db, "select id from flows", 1)
        browser.get(_page(f"http://127.0.0.1:{web}"))  # type: ignore[attr-defined]
        wait_for(browser, r"1 flow\b")
        wait_for(browser, r"client\.api/list")
    finally:
        code = up.stop()  # Ctrl+C: the page's server ends, then the proxy
    assert code == 0, up.output()
    assert "proxy stopped; recorded into" in up.output()


def test_only_pages_from_its_own_address_may_drive_it(served: str) -> None:
    """A site the developer visits could open a socket to 127.0.0.1, or reach it under its own name
    pointed there (DNS rebinding); either would read the recording and replay with their token."""
    port = int(served.rsplit(":", 1)[1])
    socket = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    socket["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    with httpx.Client(timeout=WAIT) as http:
        assert http.get(served).status_code == 200
        page = http.get(f"http://localhost:{port}/")  # its socket goes back where it was opened
        assert page.status_code == 200 and f'"ws://localhost:{port}/ws"' in page.text
        assert http.get(served, headers={"Host": f"evil.example:{port}"}).status_code == 403
        own = http.get(f"{served}/ws", headers={**socket, "Origin": served})
        assert own.status_code == 101  # the handshake a page of its own makes
        for origin in ("http://evil.example", f"http://evil.example:{port}"):
            refused = http.get(f"{served}/ws", headers={**socket, "Origin": origin})
            assert refused.status_code == 403, origin
        rebound = http.get(f"{served}/ws", headers={**socket, "Host": f"evil.example:{port}"})
        assert rebound.status_code == 403
