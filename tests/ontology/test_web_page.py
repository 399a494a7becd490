"""The page `kg serve` gives people, driven in headless Chromium (Debian's `chromium`)
over the DevTools protocol: load it, run a named query, see its rows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import pytest

from tinyfleet.ontology.resources import EXAMPLES_DIR

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")

SCRIPT = """(async () => {
  const until = async (f) => {
    for (let i = 0; i < 1200; i++) { const v = f(); if (v) return v; await new Promise(r => setTimeout(r, 50)); }
    throw new Error("page did not get there");
  };
  await until(() => document.querySelector("#named option[value='device-inventory']"));
  const select = document.getElementById("named");
  select.value = "device-inventory";
  select.dispatchEvent(new Event("change"));
  document.querySelector("#params input[name='min_ram_kb']").value = "300";
  document.getElementById("run").click();
  const rows = (t) => [...t.rows].map((r) => [...r.cells].map((c) => c.textContent));
  const result = await until(() => document.querySelector("#result table"));
  const models = await until(() => document.querySelector("#models table"));
  const devices = await until(() => document.querySelector("#devices table"));
  return { result: rows(result), models: rows(models), devices: rows(devices).length };
})()"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    files = [str(p) for p in sorted(EXAMPLES_DIR.iterdir()) if p.suffix == ".json"]
    store = tmp_path_factory.mktemp("page") / "kg"
    command = [sys.executable, "-m", "tinyfleet.cli", "kg", "serve", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--store", str(store), "--load", *files], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[2].removesuffix("sparql")
    finally:
        process.terminate()
        process.wait(timeout=20)


def _devtools(profile: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0"]
        + [f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    for _ in range(600):
        if port_file.exists() and port_file.read_text().strip():
            break
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    for _ in range(100):
        targets = json.loads(urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        pages = [t for t in targets if t.get("type") == "page" and t.get("url") == url]
        if pages:
            return browser, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise AssertionError(f"chromium did not open {url}: {targets}")


def test_page_runs_a_named_query_and_shows_the_inventory(page: str, tmp_path: Path) -> None:
    from websockets.sync.client import connect

    browser, socket_url = _devtools(tmp_path / "profile", page)
    try:
        with connect(socket_url, max_size=None, open_timeout=30) as ws:
            for attempt in range(1, 50):  # the first page load may replace the context
                params = {"expression": SCRIPT, "awaitPromise": True, "returnByValue": True}
                ws.send(json.dumps({"id": attempt, "method": "Runtime.evaluate", "params": params}))
                reply = json.loads(ws.recv(timeout=120))
                while reply.get("id") != attempt:
                    reply = json.loads(ws.recv(timeout=120))
                if "context was destroyed" not in str(reply.get("error")):
                    break
                time.sleep(0.2)
    finally:
        browser.terminate()
        browser.wait(timeout=20)
    assert "result" in reply and "exceptionDetails" not in reply["result"], reply
    value = reply["result"]["result"]["value"]
    header, *rows = value["result"]
    assert header[:4] == ["device", "board", "mcu", "ram"]
    ids = [row[0] for row in rows]
    assert ids == ["esp32s3-eye-0001", "esp32s3-eye-0002", "f746disco-0001", "sparkfun-edge-0001"]
    assert {row[0] for row in value["models"][1:]} >= {"digits-backbone@1", "sine-head@1"}
    assert value["devices"] == 1 + 9  # header + the examples' devices (8 JSON + 1 TD)
