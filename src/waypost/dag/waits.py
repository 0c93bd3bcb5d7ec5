"""Steps that carry no data: approval gates, durable sleeps, and `wp.after` ordering.

A gate or a sleep orders the flow by its position in the body: it starts once what was
called before it has finished, and every task called after it waits for it. Neither holds
a worker, a thread or a connection while it waits: it is a row in `waiting` with the time
the sweeper acts on it, so it survives any restart and fires once.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from ..errors import DefinitionError, InputError
from ..moments import next_time_of_day, time_of_day
from ..vocabulary.match import check_paths
from ..vocabulary.rates import seconds
from ..vocabulary.topics import check_topic
from .build import GraphBuilder, current_builder
from .graph import Ref, render, template_refs, to_template

ON_TIMEOUT = ("fail", "approve", "escalate")
#: What a `wp.wait_for` does when no event came in time.
ON_EVENT_TIMEOUT = ("fail", "continue")


def _builder(what: str) -> GraphBuilder:
    builder = current_builder()
    if builder is None:
        raise DefinitionError(f"{what} is a step of a flow: call it in a @wp.flow body "
                              "(inside a task, use time.sleep or your own wait)")
    return builder


def gate(name: str, timeout: timedelta | float | None = None,
         on_timeout: str = "fail") -> Any:
    """Wait for a person: `waypost approve RUN NAME` lets the flow go on, `waypost reject`
    fails it. Past `timeout` the gate fails, approves itself, or escalates to an operator
    (`on_timeout`). Its output records who decided and when."""
    builder = _builder("wp.gate")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]+", name):
        raise DefinitionError(f"a gate's name is letters, digits and . _ : - ({name!r})")
    if on_timeout not in ON_TIMEOUT:
        raise DefinitionError(f"gate {name}: on_timeout is one of {', '.join(ON_TIMEOUT)}, "
                              f"not {on_timeout!r}")
    wait = seconds(timeout, f"gate {name}: timeout")
    return builder.add_wait("gate", name, {"wait": wait, "on_timeout": on_timeout})


def wait_for(topic: str, match: dict[str, Any] | None = None,
             timeout: timedelta | float | None = None, on_timeout: str = "fail",
             name: str | None = None) -> Any:
    """Wait, holding no worker, for an event on `topic` whose payload has the fields of
    `match` (values may be the flow's parameters or tasks' outputs; dots reach into
    objects: "customer.id"). An event emitted since the run started counts, even before
    the wait is reached. Its output is the event: {"event", "topic", "key", "payload",
    "emitted_at"}. Past `timeout` the step fails, or with `on_timeout="continue"` its
    output is null."""
    builder = _builder("wp.wait_for")
    try:
        check_topic(topic)
    except InputError as exc:
        raise DefinitionError(f"wp.wait_for: {exc}") from None
    if match is None:
        match = {}
    if not isinstance(match, dict):
        raise DefinitionError(f"wp.wait_for({topic!r}): match is a dict of payload fields "
                              f"to values, not {type(match).__name__}")
    check_paths(match, f"wp.wait_for({topic!r})", DefinitionError)
    if on_timeout not in ON_EVENT_TIMEOUT:
        raise DefinitionError(f"wp.wait_for({topic!r}): on_timeout is one of "
                              f"{', '.join(ON_EVENT_TIMEOUT)}, not {on_timeout!r}")
    wait = seconds(timeout, f"wp.wait_for({topic!r}): timeout")
    template = to_template(match)
    if name is not None and (not isinstance(name, str) or
                             not re.fullmatch(r"[A-Za-z0-9_.:-]+", name)):
        raise DefinitionError(f"a step's name is letters, digits and . _ : - ({name!r})")
    return builder.add_wait("event", name or topic,
                            {"topic": topic, "match": template, "wait": wait,
                             "on_timeout": on_timeout}, template_refs(template))


def sleep(duration: timedelta | float | Any) -> Any:
    """Pause the flow for `duration` (a timedelta or seconds, or a parameter or task output
    holding seconds), counted from when everything before it has finished."""
    builder = _builder("wp.sleep")
    if isinstance(duration, Ref):
        return builder.add_wait("sleep", "sleep", {"sleep": duration.to_template()},
                                template_refs(duration.to_template()))
    delay = seconds(duration, "wp.sleep: the duration")
    return builder.add_wait("sleep", "sleep", {"sleep": delay})


def sleep_until(when: datetime | str | Any) -> Any:
    """Pause until a moment: an aware datetime, or a time of day with a zone such as
    "09:00 Europe/Paris" (the next such moment; "09:00" alone is UTC), or a parameter or
    task output holding an ISO 8601 time with its offset."""
    builder = _builder("wp.sleep_until")
    if isinstance(when, Ref):
        return builder.add_wait("sleep", "sleep", {"until": when.to_template()},
                                template_refs(when.to_template()))
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise DefinitionError("wp.sleep_until needs an aware datetime (with tzinfo); "
                                  "a naive one is ambiguous across machines")
        return builder.add_wait("sleep", "sleep", {"until": when.timestamp()})
    clock = time_of_day(when, "wp.sleep_until")
    if clock is None:
        raise DefinitionError(f"wp.sleep_until takes a datetime or \"HH:MM Zone/Name\", "
                              f"not {when!r}")
    return builder.add_wait("sleep", "sleep", clock)


def resolve_moment(options: dict[str, Any], outputs: dict[str, Any],
                   params: dict[str, Any]) -> dict[str, Any]:
    """A sleep whose duration or moment comes from the run's data, made concrete; raises
    LookupError or ValueError with a message for the run's error."""
    resolved = dict(options)
    if isinstance(options.get("sleep"), dict):
        value = render(options["sleep"], outputs, params)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"wp.sleep needs a number of seconds >= 0, got {value!r:.80}")
        resolved["sleep"] = float(value)
    if isinstance(options.get("until"), dict):
        value = render(options["until"], outputs, params)
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValueError("wp.sleep_until needs an ISO 8601 time with its offset, "
                             f"got {value!r:.80}")
        resolved["until"] = moment.timestamp()
    return resolved


def due_at(options: dict[str, Any], now: float) -> float | None:
    """When a gate or sleep that starts waiting at `now` is acted on (None: never)."""
    if "wait" in options:
        return None if options["wait"] is None else now + options["wait"]
    if "sleep" in options:
        return now + float(options["sleep"])
    if "until" in options:
        return max(float(options["until"]), now)
    return next_time_of_day(options["at"], options["tz"], now)


@contextlib.contextmanager
def after(*steps: Any) -> Iterator[None]:
    """`with wp.after(a, b): c = task_c(x)` makes every task called in the block wait for
    steps `a` and `b` without taking their outputs."""
    builder = _builder("wp.after")
    names = []
    for ref in steps:
        name = ref.step_name() if isinstance(ref, Ref) else None
        if name is None:
            raise DefinitionError("wp.after takes what tasks returned in this flow body "
                                  f"(whole outputs, not parameters or parts): {ref!r}")
        names.append(name)
    builder.after_stack.append(names)
    try:
        yield
    finally:
        builder.after_stack.pop()
