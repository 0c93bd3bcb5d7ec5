"""Masking secrets in what people see: by common names and endings, at any depth, and in a
step's positional arguments by its parameters' names."""

from __future__ import annotations

from waypost.masking import MASK, mask, mask_call


def test_common_names_and_endings_are_masked_at_any_depth() -> None:
    value = {"user": "ann", "Password": "p", "auth": {"api-key": "k", "github_token": "t",
                                                      "items": [{"secret": "s", "n": 1}]},
             "idempotency_key": "i", "key": "k", "token": None}
    assert mask(value) == {"user": "ann", "Password": MASK,
                           "auth": {"api-key": MASK, "github_token": MASK,
                                    "items": [{"secret": MASK, "n": 1}]},
                           "idempotency_key": "i", "key": "k", "token": None}
    assert mask("password") == "password" and mask([1, "x"]) == [1, "x"]


def test_positional_arguments_are_masked_by_their_parameter() -> None:
    call = {"args": ["ann", "p", {"token": "t"}], "kwargs": {"api_key": "k", "n": 1}}
    assert mask_call(call, ["user", "password", "extra"]) == {
        "args": ["ann", MASK, {"token": MASK}], "kwargs": {"api_key": MASK, "n": 1}}
    assert mask_call("not a call", []) == "not a call"
