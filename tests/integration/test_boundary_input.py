"""What `engine.start` refuses before anything is written, on both stores: keys a store
cannot keep, and values nested too deeply to cross the JSON boundary safely."""

from __future__ import annotations

import pytest

import waypost as wp
from tests.flows.behaviour import adder


@pytest.mark.parametrize("key", ["a\0b", "x" * 1025, "\udcff", "é" * 513],
                         ids=["nul", "too-long", "not-utf8", "too-long-utf8"])
def test_a_key_a_store_cannot_keep_is_refused(engine: wp.Engine, key: str) -> None:
    with pytest.raises(wp.InputError, match="idempotency key"):
        engine.start(adder, {"a": 1}, key=key)
    assert engine.runs() == []
    run_id = engine.start(adder, {"a": 1}, key="é" * 512)
    assert engine.start(adder, {"a": 1}, key="é" * 512) == run_id
