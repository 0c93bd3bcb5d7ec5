"""`Flow.bind_input`: a run's input checked against the flow's signature.

No `from __future__ import annotations` here on purpose: these flows carry real type
objects, while tests/flows/behaviour.py carries string annotations; both must be checked.
"""

import pytest

import waypost as wp
from tests.flows import behaviour


@wp.task()
def use(*values: object) -> int:
    return len(values)


@wp.flow()
def typed(count: int, ratio: float, name: str, flag: bool, meta: dict, items: list,
          note: str = "none") -> int:
    return use(count, ratio, name, flag, meta, items, note)


@wp.flow()
def untyped(anything, also=None) -> int:
    return use(anything, also)


@wp.flow()
def empty() -> int:
    return use()


GOOD = {"count": 1, "ratio": 0.5, "name": "n", "flag": True, "meta": {}, "items": []}


def test_good_input_is_bound_with_defaults():
    assert typed.bind_input(GOOD) == {**GOOD, "note": "none"}
    assert typed.bind_input({**GOOD, "ratio": 2}) == {**GOOD, "ratio": 2, "note": "none"}
    assert empty.bind_input(None) == {}
    assert empty.bind_input({}) == {}
    assert untyped.bind_input({"anything": [1, {"x": None}]}) == {
        "anything": [1, {"x": None}], "also": None}


def test_missing_parameter():
    data = dict(GOOD)
    del data["name"]
    with pytest.raises(wp.InputError, match="name") as info:
        typed.bind_input(data)
    assert "typed" in str(info.value)


def test_unknown_parameter():
    with pytest.raises(wp.InputError, match="colour"):
        typed.bind_input({**GOOD, "colour": "red"})
    with pytest.raises(wp.InputError):
        empty.bind_input({"x": 1})


@pytest.mark.parametrize(("param", "value"), [
    ("count", "1"), ("count", 1.5), ("count", True), ("count", None),
    ("ratio", "0.5"), ("ratio", False),
    ("name", 3), ("name", None),
    ("flag", 1), ("flag", "true"),
    ("meta", []), ("items", {}), ("items", "abc"),
])
def test_wrong_type(param: str, value: object):
    with pytest.raises(wp.InputError, match=rf"parameter '{param}' expects"):
        typed.bind_input({**GOOD, param: value})


@pytest.mark.parametrize("data", [[1, 2], "text", 3, True])
def test_input_must_be_an_object(data: object):
    with pytest.raises(wp.InputError, match="JSON object"):
        typed.bind_input(data)


def test_string_annotations_are_checked_too():
    # behaviour.py uses `from __future__ import annotations`.
    assert behaviour.adder.bind_input({"a": 1}) == {"a": 1, "b": 2}
    with pytest.raises(wp.InputError, match="'a' expects int"):
        behaviour.adder.bind_input({"a": "one"})
    with pytest.raises(wp.InputError, match="'xs' expects list"):
        behaviour.squares_of.bind_input({"xs": 3})


def test_input_errors_are_waypost_errors_with_exit_code_2():
    with pytest.raises(wp.WaypostError) as info:
        typed.bind_input({})
    assert isinstance(info.value, wp.InputError)
    assert info.value.exit_code == 2
