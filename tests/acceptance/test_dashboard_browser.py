"""The dashboard in a real browser (Debian's Chromium driven by Playwright, headless; both
stores): sign in, find the failed run, open its failed step and read the input that broke
it, replay it from its dead letter with a patched input, and see the run succeed. With
WAYPOST_SCREENSHOTS=1 it also takes the screenshots in docs/ (runs list, a flow's run, a
machine's run, a trace)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import waypost as wp
from tests.integration import test_api as flows
from waypost.api import create_app
from waypost.api.auth import digest

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
TOKEN = "a-token-for-the-browser-test"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@wp.task
def browser_pick(item: str) -> str:
    return item.upper()


@wp.task
def browser_pack(items: list[str]) -> str:
    return "+".join(items)


@wp.flow(name="tests.browser:shipment")
def shipment(items: list[str]) -> str:  # type: ignore[type-arg]
    picked = browser_pick.map(items)
    return browser_pack(picked)


@wp.on("browser.order.placed")
def browser_reserve(order: dict[str, Any]) -> str:
    wp.emit("browser.stock.reserved", order, key=str(order["id"]))
    return "reserved"


@wp.on("browser.stock.*")
def browser_bill(order: dict[str, Any]) -> str:
    return "billed"


@pytest.fixture
def engine(db_url: str) -> Iterator[wp.Engine]:
    eng = wp.Engine(db_url, poll=0.05)
    yield eng
    eng.close()


@pytest.fixture
def served(engine: wp.Engine) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(engine, {digest(TOKEN): "ops"})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page(served: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def test_find_a_failed_step_read_its_input_replay_it_and_see_the_run_succeed(
        engine: wp.Engine, served: str, page: Any, request: pytest.FixtureRequest) -> None:
    with engine.serving():
        broken = engine.start(flows.breaker, {"n": -7})
        with pytest.raises(wp.RunFailed):
            engine.result(broken, timeout=30)
        done = engine.start(shipment, {"items": ["a", "b", "c"]})
        assert engine.result(done, timeout=30) == "A+B+C"
        door = engine.start(flows.Door, {})
        engine.send(door, "open")
        engine.result(door, timeout=30)
        engine.emit("browser.order.placed", {"id": 1}, id="browser-e1")
        deadline = time.monotonic() + 30
        while engine.trace("browser-e1")["status"] != "complete" and \
                time.monotonic() < deadline:
            time.sleep(0.05)

        page.goto(f"{served}/ui/")
        assert page.url.endswith("/login")  # no token yet: the sign-in page, no data
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{served}/ui/")
        page.select_option("select[name=status]", "failed")
        page.click("form.filters button[type=submit]")
        row = page.locator("tr.run-row[data-status=failed]").first
        assert broken[:14] in row.inner_text()
        row.locator("a").click()
        page.wait_for_url(f"**/ui/runs/{broken}")
        failed = page.locator(f"tr.step-row[data-step='{flows.api_breaks.short_name}']")
        assert "failed" in failed.inner_text()
        assert '"args": [\n    -7\n  ]' in failed.locator("pre.step-input").inner_text()
        assert "negative: -7" in failed.locator("pre.step-error").inner_text()

        failed.get_by_text("replay it").click()
        page.wait_for_url("**/ui/dead-letters/*")
        assert "-7" in page.locator("#letter-input").inner_text()
        page.fill("textarea[name=input]", '{"args": [7], "kwargs": {}}')
        page.once("dialog", lambda dialog: dialog.accept())  # the confirmation
        page.click("#replay")
        page.locator("h1 .badge", has_text="replayed").wait_for()  # the page reloaded
        assert engine.result(broken, timeout=30) == 7
        page.goto(f"{served}/ui/runs/{broken}")
        assert page.locator("#run-status").inner_text() == "succeeded"

        # WAYPOST_SCREENSHOTS=1 refreshes docs/'s pictures (on SQLite: one set is enough)
        if os.environ.get("WAYPOST_SCREENSHOTS") and request.node.callspec.id == "sqlite":
            DOCS.mkdir(exist_ok=True)
            page.goto(f"{served}/ui/")
            page.screenshot(path=str(DOCS / "dashboard-runs.png"))
            page.goto(f"{served}/ui/runs/{done}")
            page.screenshot(path=str(DOCS / "dashboard-dag-run.png"), full_page=True)
            page.goto(f"{served}/ui/runs/{door}")
            page.screenshot(path=str(DOCS / "dashboard-machine-run.png"), full_page=True)
            page.goto(f"{served}/ui/trace/browser-e1")
            assert page.locator("#trace-status").inner_text() == "complete"
            page.screenshot(path=str(DOCS / "dashboard-trace.png"))


def test_an_open_run_page_follows_its_run_to_the_end(
        engine: wp.Engine, served: str, page: Any) -> None:
    """Nobody reloads the page: it follows the run's event stream (behind the cookie), and
    shows the run succeeded once a gate is approved elsewhere."""
    with engine.serving():
        run_id = engine.start(flows.gated, {"order": "o-browser"})
        deadline = time.monotonic() + 30
        while not any(s["status"] == "waiting" for s in engine.show(run_id)["steps"]) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        page.goto(f"{served}/login")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{served}/ui/")
        page.goto(f"{served}/ui/runs/{run_id}")
        assert page.locator("#run-status").inner_text() == "running"
        engine.approve(run_id, "manager", by="someone-else")
        page.locator("#run-status", has_text="succeeded").wait_for(timeout=15_000)
        mark = page.locator("tr.step-row[data-step='manager'] .t-mark")
        assert (mark.get_attribute("title") or "").startswith("approved by someone-else")
