"""The HTTP API (both stores), through its ASGI app: every route needs a token; runs are
started by registered name only, read, listed and paged; operators' actions are recorded
under the token's name; bad requests get a JSON error with the right status."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

import waypost as wp
from waypost.api import create_app
from waypost.api.auth import LIVENESS, LOGIN, digest

TOKEN = "a-token-for-the-api-tests"
ADD = "adder_for_the_api"  # the part after the module: names it alone


@wp.task
def api_add(a: int, b: int) -> int:
    return a + b


@wp.flow(name="tests.api:adder_for_the_api")
def adder(a: int, b: int = 2) -> int:
    return api_add(a, b)


@wp.task(retries=0)
def api_breaks(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n


@wp.flow(name="tests.api:breaker")
def breaker(n: int) -> int:
    return api_breaks(n)


@wp.task
def api_ship(order: str) -> str:
    return f"shipped {order}"


@wp.flow(name="tests.api:gated")
def gated(order: str) -> str:
    wp.gate("manager")
    return api_ship(order)


class Door(wp.Machine):
    name = "tests.api:door"
    initial = "closed"
    closed = wp.State(on={"open": "opened"})
    opened = wp.Final()


@wp.flow(every=timedelta(days=3650), name="tests.api:decennial")
def decennial() -> int:
    return api_add(1, 1)


@pytest.fixture
def client(engine: wp.Engine) -> Iterator[TestClient]:
    app = create_app(engine, {digest(TOKEN): "alice"}, max_body=10_000)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def _until(fn: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = fn()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _walk(routes: Any, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every (path, methods) of a router, into the routers it includes."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _walk(included.routes, prefix + route.include_context.prefix)
        elif getattr(route, "path", None) is not None:
            yield prefix + route.path, set(getattr(route, "methods", None) or {"GET"})


def test_every_route_needs_a_token_but_liveness(engine: wp.Engine) -> None:
    app = create_app(engine, {digest(TOKEN): "alice"})
    anonymous = TestClient(app)
    wrong = TestClient(app, headers={"Authorization": "Bearer not-the-token"})
    walked = set()
    for path, methods in _walk(app.routes):
        url = path.replace("{", "").replace("}", "")  # any value: auth comes first
        for method in methods - {"HEAD", "OPTIONS"}:
            walked.add((method, path))
            if path == LIVENESS:
                assert anonymous.request(method, url).json() == {"ok": True}
                continue
            if path == LOGIN:  # the sign-in form: it takes a token and shows nothing
                continue
            for c in (anonymous, wrong):
                answer = c.request(method, url, json={}, follow_redirects=False)
                if method == "GET" and (path == "/" or path.startswith("/ui/")):
                    # a browser is sent to sign in; nothing of the page is served
                    assert (answer.status_code, answer.headers["location"]) == (303, LOGIN)
                    assert answer.content == b""
                    continue
                assert answer.status_code == 401, (method, path)
                assert answer.json()["error"]["type"] == "Unauthorized"
                assert answer.headers["www-authenticate"] == "Bearer"
    # the walk found every route the API documents, and the documents themselves
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= walked and ("GET", "/api/v1/openapi.json") in walked
    assert len(documented) > 25
    assert anonymous.get("/no/such/path").status_code == 401  # no route is given away
    assert TestClient(app, headers={"Authorization": f"Basic {TOKEN}"}).get(
        "/api/v1/runs").status_code == 401


def test_runs_are_started_by_registered_name_read_and_paged(
        engine: wp.Engine, client: TestClient) -> None:
    made = client.post("/api/v1/runs", json={"definition": ADD, "input": {"a": 1},
                                             "key": "api-1"})
    assert made.status_code == 201, made.text
    run_id = made.json()["run_id"]
    assert made.json()["definition"] == adder.name
    again = client.post("/api/v1/runs", json={"definition": adder.name, "input": {"a": 1},
                                              "key": "api-1"})
    assert again.json()["run_id"] == run_id  # the key: one run
    with engine.serving():
        assert engine.result(run_id, timeout=30) == 3
    shown = client.get(f"/api/v1/runs/{run_id[:12]}").json()  # a prefix, as the CLI takes
    assert shown["id"] == run_id and shown["output"] == 3 and shown["key"] == "api-1"
    assert shown["steps"][0]["idempotency_key"] and shown["steps"][0]["input_checksum"]
    assert shown == engine.show(run_id)  # the same view as `waypost show --json`
    names = {d["name"]: d["kind"] for d in client.get("/api/v1/definitions").json()}
    assert names[adder.name] == "dag" and names[Door.name] == "machine"

    for i in range(4):
        engine.start(adder, {"a": i, "b": 100})
        time.sleep(0.003)
    seen, cursor, pages = [], None, 0
    while True:
        page = client.get("/api/v1/runs", params={"limit": 2, **(
            {"cursor": cursor} if cursor else {})}).json()
        seen += [r["id"] for r in page["runs"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    assert [r["id"] for r in engine.runs(limit=10)] == seen  # newest first, none lost
    found = client.get("/api/v1/runs", params={"search": '"b":100', "status": "pending"})
    assert len(found.json()["runs"]) == 4
    assert client.get("/api/v1/runs", params={"key": "api-1"}).json()["runs"][0]["id"] == \
        run_id
    assert client.get("/api/v1/runs", params={"kind": "machine"}).json()["runs"] == []
    later = client.get("/api/v1/runs", params={"since": "2999-01-01T00:00:00+00:00"})
    assert later.json() == {"runs": [], "next": None}


def test_bad_requests_get_a_json_error_with_the_right_status(client: TestClient) -> None:
    def error(answer: Any, status: int) -> dict[str, Any]:
        assert answer.status_code == status, answer.text
        found: dict[str, Any] = answer.json()["error"]
        assert found["type"] and found["message"]
        return found

    assert error(client.post("/api/v1/runs", content=b"{not json",
                             headers={"content-type": "application/json"}), 400)[
        "type"] == "MalformedJSON"
    assert "input" in error(client.post("/api/v1/runs", json={
        "definition": ADD, "input": "three"}), 422)["message"]
    error(client.post("/api/v1/runs", json={"definition": ADD, "extra": 1}), 422)
    assert "does not fit" in error(client.post("/api/v1/runs", json={
        "definition": ADD, "input": {"nope": 1}}), 422)["message"]
    # a name is looked up among the registered definitions, never imported
    assert "no registered flow" in error(client.post("/api/v1/runs", json={
        "definition": "os:system"}), 404)["message"]
    client.post("/api/v1/runs", json={"definition": ADD, "input": {"a": 1}, "key": "k"})
    assert error(client.post("/api/v1/runs", json={"definition": ADD, "input": {"a": 2},
                                                   "key": "k"}), 409)["type"] == \
        "IdempotencyConflict"
    error(client.get("/api/v1/runs/nope"), 404)
    error(client.get("/api/v1/dead-letters/12345"), 404)
    error(client.get("/api/v1/dead-letters/not-a-number"), 422)
    error(client.get("/api/v1/runs", params={"limit": 0}), 422)
    error(client.get("/api/v1/runs", params={"status": "dreaming"}), 422)
    error(client.get("/api/v1/runs", params={"cursor": "garbage"}), 422)
    error(client.get("/api/v1/runs", params={"since": "yesterday"}), 422)
    error(client.get("/api/v1/trace/nothing-here"), 404)
    error(client.post("/api/v1/schedules/nobody/pause"), 404)
    error(client.get("/api/v1/no/such/route"), 404)
    error(client.delete("/api/v1/runs"), 405)
    big = {"definition": ADD, "input": {"a": 1, "pad": "x" * 20_000}}
    assert error(client.post("/api/v1/runs", json=big), 413)["type"] == "PayloadTooLarge"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"definition": "adder_for_the_api", "input": {"pad": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}}'

    error(client.post("/api/v1/runs", content=chunks(),
                      headers={"content-type": "application/json"}), 413)


def test_operators_act_through_the_api_as_their_token(
        engine: wp.Engine, client: TestClient) -> None:
    with engine.serving():
        run_id = client.post("/api/v1/runs", json={"definition": gated.name,
                                                   "input": {"order": "o1"}}).json()["run_id"]
        _until(lambda: any(s["status"] == "waiting" for s in engine.show(run_id)["steps"]))
        approved = client.post(f"/api/v1/runs/{run_id}/gates/manager/approve", json={})
        assert approved.json()["by"] == "alice"
        assert engine.result(run_id, timeout=30) == "shipped o1"
        gate = next(s for s in engine.show(run_id)["steps"] if s["name"] == "manager")
        assert gate["output"]["by"] == "alice"  # recorded from the token's name
        answer = client.post(f"/api/v1/runs/{run_id}/gates/manager/approve", json={})
        assert answer.status_code == 422 and "already decided" in answer.json()[
            "error"]["message"]

        broken = engine.start(breaker, {"n": -1})
        with pytest.raises(wp.RunFailed):
            engine.result(broken, timeout=30)
        [letter] = client.get("/api/v1/dead-letters", params={"run": broken}).json()
        shown = client.get(f"/api/v1/dead-letters/{letter['id']}").json()
        assert shown["input"] == {"args": [-1], "kwargs": {}}
        assert "negative" in shown["history"][-1]["error"]["message"]
        replayed = client.post(f"/api/v1/dead-letters/{letter['id']}/replay",
                               json={"input": {"args": [5], "kwargs": {}}})
        assert replayed.json() == {"letter": letter["id"], "run_id": broken, "by": "alice"}
        assert engine.result(broken, timeout=30) == 5

        door = client.post("/api/v1/runs", json={"definition": Door.name}).json()["run_id"]
        sent = client.post(f"/api/v1/runs/{door}/events", json={"event": "open", "id": "e1"})
        assert sent.json()["status"] in ("consumed", "pending")
        assert engine.result(door, timeout=30) == {}

        cancelled = engine.start(gated, {"order": "o2"})
        _until(lambda: any(s["status"] == "waiting" for s in engine.show(cancelled)["steps"]))
        assert client.post(f"/api/v1/runs/{cancelled}/cancel", json={}).status_code == 200
        assert "by alice" in engine.show(cancelled)["error"]["message"]
        assert client.post(f"/api/v1/runs/{cancelled}/resume").json()["steps_reset"] >= 1
        assert client.get("/api/v1/workers").json()[0]["tasks"]


def test_events_traces_limits_and_schedules(engine: wp.Engine, client: TestClient) -> None:
    sent = client.post("/api/v1/topics/api.order.placed/events",
                       json={"payload": {"id": 1}, "id": "api-e1"})
    assert sent.status_code == 201 and sent.json()["id"] == "api-e1"
    trace = client.get("/api/v1/trace/api-e1").json()
    assert trace["correlation_id"] == "api-e1" and trace["roots"][0]["topic"] == \
        "api.order.placed"
    assert client.post("/api/v1/topics/not a topic/events", json={}).status_code == 422
    assert client.get("/api/v1/limits").json() == engine.limits()
    with engine.serving():
        pass  # a worker stores its code's schedules when it starts
    names = [s["name"] for s in client.get("/api/v1/schedules").json()]
    assert decennial.name in names
    paused = client.post("/api/v1/schedules/decennial/pause").json()
    assert paused == {"schedule": decennial.name, "paused": True}
    assert client.post(f"/api/v1/schedules/{decennial.name}/resume").json()["paused"] is False
    doc = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/runs/{run_id}/gates/{gate}/approve" in doc["paths"]


def test_without_auth_every_route_answers_and_nobody_is_recorded(engine: wp.Engine) -> None:
    app = create_app(engine, None)
    with TestClient(app) as open_client:
        run_id = engine.start(adder, {"a": 1})
        assert open_client.post(f"/api/v1/runs/{run_id}/cancel", json={}).status_code == 200
        assert engine.show(run_id)["error"]["message"] == "cancelled through the API"


@wp.task(secret="card")
def api_charge(card: str, amount: int, api_key: str = "k-123") -> int:
    return amount


@wp.flow(name="tests.api:pay", secret=["pin"])
def pay(pin: str, card: str, amount: int, password: str = "hunter2") -> int:
    return api_charge(card, amount)


def test_secrets_are_masked_in_what_the_api_shows(engine: wp.Engine, client: TestClient) -> None:
    run_id = client.post("/api/v1/runs", json={"definition": pay.name, "input": {
        "pin": "1234", "card": "4111", "amount": 5}}).json()["run_id"]
    with engine.serving():
        assert engine.result(run_id, timeout=30) == 5
    shown = client.get(f"/api/v1/runs/{run_id}").json()
    # declared names hold for every definition (the task's `card` masks the flow's too)
    assert shown["input"] == {"pin": "***", "card": "***", "amount": 5, "password": "***"}
    [step] = shown["steps"]
    assert step["input"] == {"args": ["***", 5], "kwargs": {}}  # by the task's declaration
    listed = client.get("/api/v1/runs", params={"definition": pay.name}).json()["runs"][0]
    assert listed["input"]["pin"] == "***"
    # stored as given: the task got the real values
    assert engine.show(run_id)["steps"][0]["input"] == {"args": ["4111", 5], "kwargs": {}}


def test_metrics_show_the_store_in_prometheus_format(
        engine: wp.Engine, client: TestClient) -> None:
    with engine.serving():
        assert engine.result(engine.start(adder, {"a": 1}), timeout=30) == 3
        broken = engine.start(breaker, {"n": -2})
        with pytest.raises(wp.RunFailed):
            engine.result(broken, timeout=30)
    engine.start(adder, {"a": 5})  # ready, no worker: the queue
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "text/plain")
    text = answer.text
    add_task = api_add.name
    assert (f'waypost_steps_finished_total{{definition="{adder.name}",status="succeeded",'
            f'task="{add_task}"}} 1.0') in text
    assert (f'waypost_step_attempts_total{{definition="{adder.name}",task="{add_task}"}} 1.0'
            in text)
    assert f'waypost_steps{{definition="{adder.name}",status="ready",task="{add_task}"}} 1.0' \
        in text
    assert f'waypost_dead_letters{{status="dead",task="{api_breaks.name}"}} 1.0' in text
    assert "waypost_ready_steps 1.0" in text
    assert "waypost_oldest_ready_seconds" in text and "waypost_timers_due 0.0" in text
    assert 'waypost_attempts_expired_total{reason="lost"} 0.0' in text
    took = f'definition="{adder.name}",le="+Inf",task="{add_task}"'
    assert f"waypost_step_seconds_bucket{{{took}}} 1.0" in text
    assert f'waypost_step_seconds_count{{definition="{adder.name}",task="{add_task}"}} 1.0' \
        in text
    # rolling the totals forward moves the counts, it does not change them
    engine.metrics(lag=0.0)
    assert client.get("/metrics").text.split("# HELP waypost_dead")[0] == text.split(
        "# HELP waypost_dead")[0]  # the step counts and the durations alike


def test_a_run_streams_its_changes_until_it_ends(engine: wp.Engine, client: TestClient) -> None:
    with engine.serving():
        run_id = engine.start(gated, {"order": "o-7"})
        _until(lambda: any(s["status"] == "waiting" for s in engine.show(run_id)["steps"]))
        later = threading.Timer(0.6, lambda: engine.approve(run_id, "manager", by="dave"))
        later.start()
        events: list[tuple[str | None, Any]] = []
        with client.stream("GET", f"/api/v1/runs/{run_id}/stream",
                           params={"every": 0.2}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in answer.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))
        later.join()
    first = events[0]
    assert first[0] == "run" and {"name": "manager", "status": "waiting", "attempts": 0} in \
        first[1]["steps"]
    assert events[-1] == ("end", {"id": run_id, "status": "succeeded"})
    assert events[-2][1]["status"] == "succeeded"
    changes = [e for n, e in events if n == "run"]
    assert all(a != b for a, b in itertools.pairwise(changes))  # only changes
    assert client.get("/api/v1/runs/no-such-run/stream").status_code == 404
    assert client.get(f"/api/v1/runs/{run_id}/stream", params={"every": 0}).status_code == 422


def test_a_stream_whose_run_is_gone_says_so_and_ends(engine: wp.Engine,
                                                     client: TestClient) -> None:
    run_id = engine.start(adder, {"a": 1})  # no worker: it stays pending

    def purge(tx: Any) -> None:  # as a retention job would, while someone watches
        tx.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
        tx.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    events = []
    with client.stream("GET", f"/api/v1/runs/{run_id}/stream",
                       params={"every": 0.2}) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
                if len(events) == 1:
                    engine._store().transact(purge)
    assert events == ["run", "error"]


def test_watchers_of_one_run_share_one_reader(engine: wp.Engine, client: TestClient) -> None:
    """However many follow a run, the server reads it once per interval; one who leaves
    early does not stop the others' stream, and the last to leave stops the reading."""
    hub = client.app.state.hub
    with engine.serving():
        run_id = engine.start(gated, {"order": "o-shared"})
        _until(lambda: any(s["status"] == "waiting" for s in engine.show(run_id)["steps"]))
        seen: dict[int, list[str]] = {0: [], 1: [], 2: []}
        started = [threading.Event() for _ in seen]

        def watch(n: int) -> None:
            with client.stream("GET", f"/api/v1/runs/{run_id}/stream",
                               params={"every": 0.2}) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        seen[n].append(json.loads(line.removeprefix("data: "))["status"])
                        started[n].set()
                        if n == 2:
                            return  # this one closes its page after the first event

        threads = [threading.Thread(target=watch, args=(n,)) for n in seen]
        for t in threads:
            t.start()
        for e in started:
            assert e.wait(10)
        threads[2].join(10)
        assert _until(lambda: len(hub.watches) == 1 and len(
            next(iter(hub.watches.values())).queues) == 2, timeout=10)
        engine.approve(run_id, "manager", by="erin")
        for t in threads:
            t.join(30)
    assert seen[0][-1] == seen[1][-1] == "succeeded" and seen[2] == ["running"]
    assert hub.watches == {}
