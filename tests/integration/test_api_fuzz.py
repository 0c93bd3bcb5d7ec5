"""The API fuzzed from its own OpenAPI document (schemathesis, both stores): whatever a
request holds, within the schema or not, the answer is never a 5xx."""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

import waypost as wp
from waypost.api import create_app
from waypost.api.auth import digest

from . import test_api  # noqa: F401 - its flows and machine are what can be started

TOKEN = "a-token-for-the-fuzz-tests"


def test_no_request_makes_the_api_fail(engine: wp.Engine) -> None:
    app = create_app(engine, {digest(TOKEN): "fuzz"}, max_body=10_000)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25

    for operation in operations:
        @hypothesis.settings(max_examples=10, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=auth, checks=[not_a_server_error])

        call()
