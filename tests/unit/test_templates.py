"""Templates: what a flow body's values become in the graph, and rendering them back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.dag.graph import LITERAL, PARAM, REF, Ref, render, template_refs, to_template

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(
    allow_nan=False, allow_infinity=False)
keys = st.text(max_size=6) | st.sampled_from(["$ref", "$param", "$lit", "path", "$", "$x"])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


@given(json_values)
def test_plain_json_round_trips(value: Any) -> None:
    template = to_template(value)
    assert render(template, {}, {}) == value
    assert template_refs(template) == []


class _Hole:
    """Marks where a placeholder goes in a generated value."""

    def __init__(self, kind: str, name: str, path: tuple[Any, ...]) -> None:
        self.kind, self.name, self.path = kind, name, path


sources = {"a": {"x": [10, {"y": "deep"}], "z": None}, "b": [1, 2, 3], "c": "text"}
params = {"p": {"k": [True, False]}, "q": 7}
holes = st.sampled_from([
    _Hole("step", "a", ()), _Hole("step", "a", ("x", 1, "y")), _Hole("step", "a", ("z",)),
    _Hole("step", "b", (2,)), _Hole("step", "c", ()), _Hole("param", "p", ("k", 0)),
    _Hole("param", "q", ()),
])
with_holes = st.recursive(
    json_scalars | holes,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


def _with_refs(value: Any) -> Any:
    if isinstance(value, _Hole):
        ref = Ref((value.kind, value.name))
        for key in value.path:
            ref = ref[key]
        return ref
    if isinstance(value, list):
        return [_with_refs(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_refs(v) for k, v in value.items()}
    return value


def _with_values(value: Any) -> Any:
    if isinstance(value, _Hole):
        found = (sources if value.kind == "step" else params)[value.name]
        for key in value.path:
            found = found[key]
        return found
    if isinstance(value, list):
        return [_with_values(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_values(v) for k, v in value.items()}
    return value


def _steps_in_order(value: Any) -> list[str]:
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, _Hole):
            if v.kind == "step" and v.name not in found:
                found.append(v.name)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(value)
    return found


@given(with_holes)
def test_placeholders_render_to_the_values_they_stand_for(value: Any) -> None:
    template = to_template(_with_refs(value))
    assert render(template, sources, params) == _with_values(value)
    assert template_refs(template) == _steps_in_order(value)


def test_tuples_become_lists():
    assert to_template((1, (2, 3))) == [1, [2, 3]]


def test_ref_template_shapes():
    assert to_template(Ref(("step", "s"))["a"][0]) == {REF: "s", "path": ["a", 0]}
    assert to_template(Ref(("param", "p"))) == {PARAM: "p", "path": []}
    assert to_template({"$x": 1}) == {LITERAL: {"$x": 1}}
    assert to_template({"x": {"$y": 1}}) == {"x": {LITERAL: {"$y": 1}}}
    assert repr(Ref(("step", "s"))["a"][0]) == "<step s['a'][0]>"


@pytest.mark.parametrize(("template", "needle"), [
    ({REF: "a", "path": ["missing"]}, "missing"),
    ({REF: "b", "path": [7]}, "7"),
    ({REF: "c", "path": ["x"]}, "x"),  # indexing a str by a str
    ({REF: "a", "path": ["z", "deeper"]}, "deeper"),  # indexing None
    ({PARAM: "q", "path": [0]}, "0"),
])
def test_rendering_a_missing_path_is_a_lookup_error(template: Any, needle: str) -> None:
    with pytest.raises(LookupError, match=needle):
        render(template, sources, params)


def test_rendering_an_unknown_source_is_a_lookup_error():
    with pytest.raises(LookupError):
        render({REF: "nope", "path": []}, sources, params)
    with pytest.raises(LookupError):
        render({PARAM: "nope", "path": []}, sources, params)
