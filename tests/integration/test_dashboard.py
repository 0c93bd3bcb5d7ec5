"""The dashboard's pages and guards (both stores), without a browser: sign-in by cookie,
no change from a cookie alone without htmx's header (another site's form cannot act),
every page rendered, secrets masked, and a refused action said in the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import waypost as wp
from waypost.api import create_app
from waypost.api.auth import COOKIE, digest

from . import test_api as flows

TOKEN = "a-token-for-the-dashboard-tests"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def browser(engine: wp.Engine) -> Iterator[TestClient]:
    app = create_app(engine, {digest(TOKEN): "carol"})
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _sign_in(c: TestClient) -> None:
    answer = c.post("/login", content=f"token={TOKEN}", headers=FORM)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()


def test_signing_in_and_what_a_cookie_alone_cannot_do(engine: wp.Engine,
                                                      browser: TestClient) -> None:
    assert browser.get("/ui/").headers["location"] == "/login"
    refused = browser.post("/login", content="token=not-it", headers=FORM)
    assert refused.status_code == 401 and "not known" in refused.text
    _sign_in(browser)
    assert browser.get("/ui/").status_code == 200
    run_id = engine.start(flows.adder, {"a": 1})
    # a form posted from another site carries the cookie but not htmx's header
    assert browser.post(f"/ui/runs/{run_id}/cancel").status_code == 401
    assert engine.show(run_id)["status"] == "pending"
    done = browser.post(f"/ui/runs/{run_id}/cancel", headers={"HX-Request": "true"})
    assert done.status_code == 204 and done.headers["hx-refresh"] == "true"
    shown = engine.show(run_id)
    assert shown["status"] == "cancelled" and "by carol" in shown["error"]["message"]
    # a refusal is said where the page shows it, not as a broken page
    again = browser.post(f"/ui/runs/{run_id}/cancel", headers={"HX-Request": "true"})
    assert again.status_code == 200 and "already cancelled" in again.text


def test_every_page_renders_and_masks_secrets(engine: wp.Engine, browser: TestClient) -> None:
    _sign_in(browser)
    with engine.serving():
        paid = engine.start(flows.pay, {"pin": "9876", "card": "4111", "amount": 3})
        assert engine.result(paid, timeout=30) == 3
        broken = engine.start(flows.breaker, {"n": -1})
        with pytest.raises(wp.RunFailed):
            engine.result(broken, timeout=30)
        door = engine.start(flows.Door, {})
        engine.send(door, "open")
        engine.result(door, timeout=30)
    page = browser.get(f"/ui/runs/{paid}").text
    assert "9876" not in page and "4111" not in page and "***" in page
    assert "9876" not in browser.get("/ui/").text
    failed = browser.get(f"/ui/runs/{broken}").text
    assert "negative: -1" in failed and "<svg" in failed and "dead letter" in failed
    machine = browser.get(f"/ui/runs/{door}").text
    assert "Transitions" in machine and "opened (final)" in machine
    assert '<title>open</title>open</text>' in machine  # the event along the transition
    [letter] = engine.dead_letters(run_id=broken)
    for path in ("/ui/", "/ui/?status=failed&kind=dag", "/ui/runs-table", f"/ui/trace/{broken}",
                 "/ui/dead-letters", f"/ui/dead-letters/{letter['id']}", "/ui/workers",
                 "/ui/limits", "/ui/schedules", "/ui/static/htmx.min.js", "/ui/static/live.js"):
        assert browser.get(path).status_code == 200, path
    assert broken[:14] in browser.get("/ui/?status=failed").text
    assert broken[:14] not in browser.get("/ui/?status=succeeded").text
    bad = browser.post(f"/ui/dead-letters/{letter['id']}/replay", content="input=%7Bnot",
                       headers={**FORM, "HX-Request": "true"})
    assert "not JSON" in bad.text
    assert browser.get("/ui/static/../../auth.py").status_code in (404, 401)
    missing = browser.get("/ui/runs/no-such-run")  # a mistyped link: a page that says so
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "text/html") and "no run matches" in missing.text


@wp.task(retries=2, backoff=wp.Backoff(initial=0.3, jitter=False))
def ui_flaky(n: int, ctx: wp.Context) -> int:
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return n


@wp.task
def ui_double(n: int) -> int:
    return 2 * n


@wp.flow(name="tests.dashboard:retried_mapped_gated")
def retried_mapped_gated(n: int) -> list[int]:
    first = ui_flaky(n)
    wp.gate("review")
    return ui_double.map([first, 1, 2])


def test_the_run_page_shows_retry_waits_decisions_and_map_progress(
        engine: wp.Engine, browser: TestClient) -> None:
    _sign_in(browser)
    with engine.serving():
        run_id = engine.start(retried_mapped_gated, {"n": 5})
        waiting = flows._until(lambda: "review" in {
            s["name"] for s in engine.show(run_id)["steps"] if s["status"] == "waiting"})
        assert waiting
        approved = browser.post(f"/ui/runs/{run_id}/gates/review/approve",
                                headers={"HX-Request": "true"})
        assert approved.status_code == 204
        assert engine.result(run_id, timeout=30) == [10, 2, 4]
    page = browser.get(f"/ui/runs/{run_id}").text
    flaky = _row(page, "ui_flaky")
    # three attempts as bars, the two waits before the retries hatched between them
    assert flaky.count('class="t-bar"') == 3 and flaky.count('class="t-wait"') == 2
    assert "waiting to retry before attempt 2" in flaky
    assert "waiting to retry before attempt 3" in flaky and "attempt 1 fails" in flaky
    gate = _row(page, "review")
    assert "<b>approved</b> by carol" in gate and 'class="t-mark"' in gate
    assert "approved by carol at" in gate
    assert "ui_double (map 3/3)" in page
    assert page.count('height="4" fill="#1f9d55"') == 1  # the map's strip: all succeeded
    assert "waiting to retry (backoff, then queue)" in page  # the legend says what is drawn


def _row(page: str, step: str) -> str:
    """The steps table's row of one step."""
    return page.split(f'data-step="{step}"')[1].split('class="step-row"')[0]
