"""`waypost emit`, `trace` and `replay-topic` (both stores), as a script would use them."""

from __future__ import annotations

import json

import pytest

from tests.flows.chains import HOPS

from ._support import Workers, wait_for
from .test_cli import ok, one_error_line, waypost

pytestmark = pytest.mark.slow

MODULE = "tests/flows/chains.py"


def test_emit_then_trace_a_chain_to_its_end(db_url: str, workers: Workers) -> None:
    workers.wait_serving(workers.start("--poll", "0.05", module=MODULE))
    sent = json.loads(ok(waypost("emit", "proc.hop", "--payload", '{"n": 0}', "--id", "hop-0",
                                 "--json", db=db_url)))
    assert (sent["id"], sent["duplicate"], sent["deliveries"]) == ("hop-0", False, 1)
    again = ok(waypost("emit", "proc.hop", "--payload", '{"n": 0}', "--id", "hop-0",
                       db=db_url))
    assert "emitted before, nothing new stored" in again

    def finished() -> dict[str, object] | None:
        found = json.loads(ok(waypost("trace", "hop-0", "--json", db=db_url)))
        return found if found["status"] != "in_progress" else None

    found = wait_for(finished, 60, "the chain to end", interval=0.2)
    assert found["status"] == "complete"
    text = ok(waypost("trace", "hop-0", db=db_url)).splitlines()
    assert text[0] == "correlation hop-0"
    assert text[-1] == f"complete: {HOPS} runs succeeded"
    assert sum("event proc.hop" in line for line in text) == HOPS
    assert sum(line.strip().startswith("run ") and "succeeded" in line for line in text) == HOPS
    # deeper hops are indented deeper: the tree says what caused what
    assert text[1].startswith("  event proc.hop hop-0") and text[2].startswith("    run ")


def test_bad_emits_traces_and_replays_are_one_clear_line(db_url: str) -> None:
    ok(waypost("emit", "a.b", db=db_url))  # creates the store
    assert "topic" in one_error_line(waypost("emit", "not a topic", db=db_url), 2)
    assert "JSON" in one_error_line(waypost("emit", "a.b", "--payload", "{", db=db_url), 2)
    assert "no event, run or correlation id" in one_error_line(
        waypost("trace", "nothing-here", db=db_url), 2)
    assert "no subscription" in one_error_line(
        waypost("replay-topic", "mod:nobody", "--since", "2h", db=db_url), 2)
    assert "--since" in one_error_line(
        waypost("replay-topic", "mod:nobody", "--since", "yesterday", db=db_url), 2)
