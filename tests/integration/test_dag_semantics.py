"""Random DAGs with random fatal failures, checked against a model computed in Python:
what succeeded, what failed, what was blocked, and the run's outcome (both stores)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import waypost as wp

_names = itertools.count()


@wp.task()
def node(inputs: list, label: int, fail: bool) -> int:
    if fail:
        raise wp.Fatal(f"node {label} fails on purpose")
    return label + sum(inputs)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[list[int]], list[bool]]:
    n = draw(st.integers(1, 9))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
            for i in range(n)]
    fails = [draw(st.integers(0, 4)) == 0 for _ in range(n)]
    return deps, fails


def _model(deps: list[list[int]], fails: list[bool]) -> dict[int, tuple[str, Any]]:
    state: dict[int, tuple[str, Any]] = {}
    for i, ds in enumerate(deps):
        if any(state[d][0] != "succeeded" for d in ds):
            state[i] = ("upstream_failed", None)
        elif fails[i]:
            state[i] = ("failed", None)
        else:
            state[i] = ("succeeded", i + sum(state[d][1] for d in ds))
    return state


def _flow(deps: list[list[int]], fails: list[bool]) -> wp.Flow[Any, Any]:
    sinks = [i for i in range(len(deps)) if not any(i in ds for ds in deps)]

    def body() -> list[Any]:
        refs: list[Any] = []
        for i, ds in enumerate(deps):
            refs.append(node([refs[d] for d in ds], i, fails[i]))
        return [refs[s] for s in sinks]

    return wp.flow(name=f"tests:random_dag_{next(_names)}")(body)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(dag=dags())
def test_a_random_dag_ends_as_the_model_says(engine: wp.Engine,
                                             dag: tuple[list[list[int]], list[bool]]) -> None:
    deps, fails = dag
    flow = _flow(deps, fails)
    model = _model(deps, fails)
    run_id = engine.start(flow, {})
    with engine.serving():
        try:
            output = engine.result(run_id, timeout=60)
        except wp.RunFailed:
            output = None
    view = engine.show(run_id)
    names = {s["name"]: s for s in view["steps"]}
    for i, (status, value) in model.items():
        step = names["node" if i == 0 else f"node#{i + 1}"]
        assert (step["status"], step["output"]) == (status, value), (i, deps, fails)
        assert step["attempts"] == (0 if status == "upstream_failed" else 1)
    sinks = [i for i in range(len(deps)) if not any(i in ds for ds in deps)]
    if any(fails):
        assert view["status"] == "failed" and output is None
        assert view["error"]["type"] == "Fatal"
    else:
        assert view["status"] == "succeeded"
        assert output == [model[s][1] for s in sinks]
