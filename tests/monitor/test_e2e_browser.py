"""End to end: `streamlit run` on loopback, Debian's Chromium driven by Playwright, the leaderboard as a person sees it.

Streamlit renders after the page loads (websocket, then React), so the test waits for content, never for "load":
the page title, an agent name from the demo store in the headline cards, and the plotly equity race with one line
per agent. The screenshot is saved for review at `runs/monitor/monitor_leaderboard.png` (`runs/` is git-ignored).

Chromium is Debian's `/usr/bin/chromium` (never `playwright install`); without it the test skips, saying so.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "runs" / "monitor" / "monitor_leaderboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_AGENTS = ("cash", "buy_and_hold", "sma_cross", "momentum", "scalper", "roundtrip")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def monitor(demo_store_url: str, tmp_path: Path) -> Iterator[str]:
    """The monitor served by `streamlit run` on a free loopback port, on the demo store; yields its URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "ARENA_MONITOR_TOKEN"))}
    env.update(
        {
            "ARENA_DB_URL": demo_store_url,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'no-mlflow' / 'mlflow.db'}",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        }
    )
    command = [
        *(sys.executable, "-m", "streamlit", "run", str(ROOT / "apps" / "monitor" / "app.py")),
        *("--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port)),
        *("--server.fileWatcherType", "none"),
    ]
    log = tmp_path / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on {url} within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_leaderboard_renders_in_a_real_browser(monitor: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1300})
            page.goto(monitor, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Leaderboard").wait_for(timeout=60_000)
            cards = page.locator('[data-testid="stMetric"]')
            cards.nth(4).wait_for(timeout=60_000)
            headline = " ".join(cards.all_inner_texts())
            assert "Leader" in headline
            assert "Best LLM agent" in headline
            assert any(name in headline for name in DEMO_AGENTS), headline

            chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
            chart.wait_for(timeout=60_000)
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .scatterlayer .trace').length >= 6",
                timeout=60_000,
            )
            legend = " ".join(t or "" for t in chart.locator(".legendtext").all_text_contents())
            for name in DEMO_AGENTS:
                assert name in legend, legend
            assert page.locator('[data-testid="stException"]').count() == 0
            page.get_by_role("tab", name="Performance").wait_for(timeout=30_000)
            page.wait_for_timeout(500)  # let plotly finish its transition before the screenshot
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
