"""Building graphs from flow bodies: edges come from data, names, maps, misuse."""

from __future__ import annotations

import pytest

import waypost as wp
from waypost.dag.graph import LITERAL, PARAM, REF, Graph


@wp.task()
def load(n: int) -> list:
    return list(range(n))


@wp.task()
def double(x: int) -> int:
    return 2 * x


@wp.task()
def combine(a: int, b: int = 0, *, label: str = "") -> dict:
    return {"sum": a + b, "label": label}


@wp.task()
def stamp(x: int, ctx: wp.Context) -> str:
    return f"{ctx.step}:{x}"


@wp.task(retries=3, backoff=wp.Backoff(initial=0.5, factor=3.0, max=9.0, jitter=False),
         timeout=12.5)
def careful(x: int) -> int:
    return x


def _graph(body) -> Graph:
    return wp.flow(body).graph


def test_edges_come_from_the_data_passed():
    def body(n: int) -> dict:
        items = load(n)
        first = double(items[0])
        second = double(first)
        return {"out": combine(first, b=second["x"]), "n": n}

    graph = _graph(body)
    assert list(graph.nodes) == ["load", "double", "double#2", "combine"]
    deps = {name: node.deps for name, node in graph.nodes.items()}
    assert deps == {"load": [], "double": ["load"], "double#2": ["double"],
                    "combine": ["double", "double#2"]}
    assert graph.successors == {"load": ["double"], "double": ["double#2", "combine"],
                                "double#2": ["combine"], "combine": []}
    assert graph.downstream("load") and set(graph.downstream("load")) == {
        "double", "double#2", "combine"}
    assert graph.downstream("combine") == []
    # A flow parameter is an input, not an edge.
    assert graph.nodes["load"].args == [{PARAM: "n", "path": []}]
    assert graph.nodes["double"].args == [{REF: "load", "path": [0]}]
    assert graph.nodes["combine"].kwargs == {"b": {REF: "double#2", "path": ["x"]}}
    assert graph.output == {"out": {REF: "combine", "path": []}, "n": {PARAM: "n", "path": []}}


def test_independent_calls_have_no_edges_and_nested_literals_carry_edges():
    def body() -> list:
        a, b = double(1), double(2)
        return [combine(a, label="x"), combine({"deep": [b]}, b=3)]  # type: ignore[arg-type]

    graph = _graph(body)
    assert graph.nodes["double"].deps == []
    assert graph.nodes["double#2"].deps == []
    assert graph.nodes["combine"].deps == ["double"]
    assert graph.nodes["combine#2"].deps == ["double#2"]
    assert graph.nodes["combine#2"].args == [{"deep": [{REF: "double#2", "path": []}]}]


def test_a_task_called_n_times_is_numbered_from_two():
    def body() -> int:
        x = double(1)
        for _ in range(3):
            x = double(x)
        return x

    assert list(_graph(body).nodes) == ["double", "double#2", "double#3", "double#4"]


def test_map_nodes():
    def body(n: int, extra: int) -> list:
        return combine.map(load(n), extra, label="m")

    graph = _graph(body)
    node = graph.nodes["combine"]
    assert node.kind == "map"
    assert node.over == {REF: "load", "path": []}
    assert node.args == [{PARAM: "extra", "path": []}]
    assert node.kwargs == {"label": "m"}
    assert node.deps == ["load"]
    assert node.to_json()["over"] == node.over
    assert "over" not in graph.nodes["load"].to_json()


def test_map_over_a_parameter_or_a_literal_list():
    def over_param(xs: list) -> list:
        return double.map(xs)

    def over_literal() -> list:
        return double.map([1, 2, 3])

    assert _graph(over_param).nodes["double"].over == {PARAM: "xs", "path": []}
    assert _graph(over_param).nodes["double"].deps == []
    assert _graph(over_literal).nodes["double"].over == [1, 2, 3]


def test_map_needs_a_list():
    def body() -> list:
        return double.map(5)

    with pytest.raises(wp.DefinitionError, match=r"map\(\) needs a list"):
        _graph(body)


def test_options_are_stored_on_the_node():
    def body() -> int:
        return careful(1)

    assert _graph(body).nodes["careful"].options == {
        "max_attempts": 4, "timeout": 12.5,
        "backoff": {"initial": 0.5, "factor": 3.0, "max": 9.0, "jitter": False}}


def test_context_parameter_is_not_a_call_argument():
    def body() -> str:
        return stamp(1)

    assert _graph(body).nodes["stamp"].args == [1]

    def passes_ctx() -> str:
        return stamp(1, None)  # type: ignore[arg-type]

    with pytest.raises(wp.DefinitionError, match="stamp"):
        _graph(passes_ctx)


@pytest.mark.parametrize("call", [
    lambda: double(),
    lambda: double(1, 2),
    lambda: double(y=1),
    lambda: combine(1, 2, 3),
    lambda: combine(1, nope=2),
    lambda: combine.map([1], 2, 3),
    lambda: double.map([1], 2),
])
def test_bad_task_call_arguments_are_definition_errors(call):
    def body() -> object:
        return call()

    with pytest.raises(wp.DefinitionError, match=r"task (double|combine):"):
        _graph(body)


@pytest.mark.parametrize("misuse", [
    lambda p: bool(p),
    lambda p: 1 if p else 0,
    lambda p: len(p),
    lambda p: list(p),
    lambda p: p == 3,
    lambda p: (*p,),
    lambda p: p[1.5],
    lambda p: p[None],
])
@pytest.mark.parametrize("source", ["param", "output"])
def test_using_a_placeholder_as_a_value_is_a_definition_error(misuse, source):
    def body(n: int) -> int:
        value = n if source == "param" else double(n)
        misuse(value)
        return double(n)

    with pytest.raises(wp.DefinitionError):
        _graph(body)


def test_the_refusal_message_explains_itself():
    def body(n: int) -> int:
        if n:
            return double(n)
        return double(0)

    with pytest.raises(wp.DefinitionError, match=r"param 'n' exists only at run time"):
        _graph(body)


def test_placeholders_cannot_be_hashed():
    def body(n: int) -> int:
        _ = {n: 1}
        return double(n)

    with pytest.raises(TypeError):
        _graph(body)


@pytest.mark.parametrize("value", [object(), {1: "int key"}, {1.5}, b"bytes"])
def test_non_json_values_cannot_be_passed(value):
    def body() -> dict:
        return combine(value)

    with pytest.raises(wp.DefinitionError):
        _graph(body)


def test_dollar_keys_are_escaped_as_literals():
    def body() -> dict:
        return combine({"$ref": "load", "path": []})  # type: ignore[arg-type]

    node = _graph(body).nodes["combine"]
    assert node.args == [{LITERAL: {"$ref": "load", "path": []}}]
    assert node.deps == []


def test_a_placeholder_from_another_flow_is_refused():
    stolen = []

    def first() -> int:
        out = double(1)
        stolen.append(out)
        return out

    _graph(first)

    def third() -> int:
        return combine(2, stolen[0])

    with pytest.raises(wp.DefinitionError, match="belongs to another flow"):
        _graph(third)


def test_flow_declaration_errors():
    with pytest.raises(wp.DefinitionError, match="calls no task"):
        _graph(lambda: 1)

    def star(*args: int) -> None: ...
    def kw(**kwargs: int) -> None: ...
    def positional(a: int, /) -> None: ...

    for fn in (star, kw, positional):
        with pytest.raises(wp.DefinitionError, match="parameters must be named"):
            wp.flow(fn)

    @wp.flow()
    def fine(n: int) -> int:
        return double(n)

    with pytest.raises(wp.DefinitionError, match=r"engine\.start"):
        fine(1)


def test_task_declaration_errors():
    with pytest.raises(wp.DefinitionError, match="retries"):
        wp.task(retries=-1)(lambda: 1)
    with pytest.raises(wp.DefinitionError, match="timeout"):
        wp.task(timeout=0)(lambda: 1)


def test_a_task_outside_a_flow_is_the_plain_function():
    assert double(4) == 8
    assert double.map([1, 2]) == [2, 4]
    assert combine.map([1, 2], 10, label="z") == [{"sum": 11, "label": "z"},
                                                  {"sum": 12, "label": "z"}]


def test_graph_json_round_trip_and_fingerprint():
    def body(n: int) -> dict:
        return {"s": combine.map(load(n), label="x"), "c": careful(n)}

    graph = _graph(body)
    again = Graph.from_json(graph.to_json())
    assert again.to_json() == graph.to_json()
    assert again.fingerprint() == graph.fingerprint()
    assert again.successors == graph.successors
    # Built twice from the same code: the same definition.
    assert _graph(body).fingerprint() == graph.fingerprint()
    assert len(graph.fingerprint()) == 24


def test_fingerprint_changes_with_shape_and_options():
    def base(n: int) -> int:
        return double(double(n))

    def other_edge(n: int) -> int:
        double(n)
        return double(n)

    def other_options(n: int) -> int:
        return careful(double(n))

    def other_literal(n: int) -> int:
        return combine(double(n), 1)

    def other_literal2(n: int) -> int:
        return combine(double(n), 2)

    # The same flow name for all, so only the graph differs.
    prints = [wp.Flow(f, name="fingerprinted").graph.fingerprint()
              for f in (base, other_edge, other_options, other_literal, other_literal2)]
    assert len(set(prints)) == len(prints)
