"""Steps finished by another system, through a completion token (both stores)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import waypost as wp
from tests.flows.external import MAILBOX_ENV, pay, tokens

from .helpers import step_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mailbox.jsonl"
    monkeypatch.setenv(MAILBOX_ENV, str(path))
    return path


def _wait_token(mailbox: Path, count: int) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = tokens(mailbox)
        if len(found) >= count:
            return str(found[count - 1]["token"])
        time.sleep(0.02)
    raise AssertionError(f"no completion token #{count} was handed out")


def test_a_step_waits_for_its_token_and_a_token_works_once(engine: wp.Engine,
                                                           mailbox: Path) -> None:
    run_id = engine.start(pay, {"amount": 42})
    with engine.serving():
        token = _wait_token(mailbox, 1)
        time.sleep(0.2)  # the step must keep waiting, holding no worker
        view = engine.show(run_id)
        step = step_of(view, "request_payment")
        assert (view["status"], step["status"], step["worker"]) == ("running", "running", None)
        assert step["completion_token"] == token
        assert "another system" in step["waiting"]

        assert engine.complete(token, {"provider": "acme"}) == run_id
        assert engine.result(run_id, timeout=20) == "paid 42 via acme"
        with pytest.raises(wp.InputError, match="already used"):
            engine.complete(token, {"provider": "again"})
    assert step_of(engine.show(run_id), "request_payment")["output"] == {"provider": "acme"}


def test_a_failed_external_step_is_retried_with_a_new_token(engine: wp.Engine,
                                                            mailbox: Path) -> None:
    run_id = engine.start(pay, {"amount": 7})
    with engine.serving():
        first = _wait_token(mailbox, 1)
        engine.fail(first, "card declined")
        second = _wait_token(mailbox, 2)
        assert second != first
        with pytest.raises(wp.InputError):
            engine.complete(first, {"provider": "stale"})  # the failed attempt's token is dead
        engine.complete(second, {"provider": "acme"})
        assert engine.result(run_id, timeout=20) == "paid 7 via acme"
    step = step_of(engine.show(run_id), "request_payment")
    assert step["attempts"] == 2
    (failed,) = step["history"]
    assert failed["error"]["message"] == "card declined"


def test_waypost_complete_on_the_command_line(engine: wp.Engine, mailbox: Path,
                                              db_url: str) -> None:
    run_id = engine.start(pay, {"amount": 5})
    with engine.serving():
        token = _wait_token(mailbox, 1)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "waypost.cli", "--db", db_url, *args],
                                  cwd=ROOT, capture_output=True, text=True, timeout=60)

        bad = cli("complete", token, "--output", "{not json")
        assert bad.returncode == 2 and "not valid JSON" in bad.stderr
        done = cli("complete", token, "--output", '{"provider": "cli"}')
        assert done.returncode == 0, done.stderr
        assert engine.result(run_id, timeout=20) == "paid 5 via cli"
        again = cli("complete", token, "--output", '{"provider": "cli"}')
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1 and "already used" in again.stderr


@wp.task(completes_externally=True)
def answered_fast(release: str, ctx: wp.Context) -> None:
    assert ctx.completion_token is not None
    Path(release + ".token").write_text(ctx.completion_token)
    deadline = time.monotonic() + 20
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@wp.flow()
def fast_answer(release: str) -> None:
    return answered_fast(release)


def test_a_token_answered_before_the_task_returned_completes_the_step(
        engine: wp.Engine, tmp_path: Path) -> None:
    """The other system may answer before the worker recorded the hand-off."""
    release = tmp_path / "release"
    token_file = tmp_path / "release.token"
    run_id = engine.start(fast_answer, {"release": str(release)})
    with engine.serving():
        deadline = time.monotonic() + 20
        while not token_file.exists() or not token_file.read_text():
            assert time.monotonic() < deadline, "no token handed out"
            time.sleep(0.01)
        assert engine.complete(token_file.read_text(), {"ok": True}) == run_id
        release.touch()
        assert engine.result(run_id, timeout=20) == {"ok": True}
    step = step_of(engine.show(run_id), "answered_fast")
    assert (step["attempts"], step["history"]) == (1, [])


@wp.task(completes_externally=True)
def hands_off(folder: str, ctx: wp.Context) -> None:
    assert ctx.completion_token is not None
    Path(folder, "token").write_text(ctx.completion_token)


@wp.task()
def works_here(folder: str) -> str:
    deadline = time.monotonic() + 20
    while not Path(folder, "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "computed here"


@wp.task()
def pair_up(external: object, local: str) -> dict[str, object]:
    return {"external": external, "local": local}


@wp.flow()
def side_by_side(folder: str) -> dict[str, object]:
    return pair_up(hands_off(folder), works_here(folder))


def test_a_token_forged_for_a_step_claimed_in_the_same_batch_is_refused(
        engine: wp.Engine, tmp_path: Path) -> None:
    """Defect 1: the token named the step and a lease token shared by the whole claim
    batch, so swapping in another step's id completed that (normal, running) step."""
    run_id = engine.start(side_by_side, {"folder": str(tmp_path)})
    token_file = tmp_path / "token"
    with engine.serving(concurrency=4):
        deadline = time.monotonic() + 20
        while not token_file.exists() or not token_file.read_text():
            assert time.monotonic() < deadline, "no token handed out"
            time.sleep(0.01)
        token = token_file.read_text()
        steps = {s["name"]: s for s in engine._store().read(lambda tx: tx.steps_of(run_id))}
        local = steps["works_here"]
        assert local["status"] == "running", "both roots are claimed in one batch"
        prefix, _, secret = token.rpartition(".")
        for forged in (f"wp1.{local['id']}.{secret}", f"wp1.{local['id']}.{token}",
                       f"{prefix.rsplit('.', 1)[0]}.{local['id']}.{secret}"):
            with pytest.raises(wp.InputError):
                engine.complete(forged, "forged")
        (tmp_path / "release").touch()
        engine.complete(token, "from outside")
        assert engine.result(run_id, timeout=20) == {"external": "from outside",
                                                     "local": "computed here"}
    assert step_of(engine.show(run_id), "works_here")["output"] == "computed here"
