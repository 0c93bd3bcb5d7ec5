"""Flows whose payment step is finished by another system (used in-process and by CLI tests)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import waypost as wp

MAILBOX_ENV = "WAYPOST_TEST_MAILBOX"


@wp.task(completes_externally=True, retries=1, backoff=wp.Backoff(initial=0.05, jitter=False))
def request_payment(amount: int, ctx: wp.Context) -> None:
    """Hands the token to the 'payment provider' (a file) and returns at once."""
    mailbox = Path(os.environ[MAILBOX_ENV])
    with mailbox.open("a") as f:
        f.write(json.dumps({"attempt": ctx.attempt, "token": ctx.completion_token}) + "\n")


@wp.task()
def receipt(payment: dict, amount: int) -> str:
    return f"paid {amount} via {payment['provider']}"


@wp.flow()
def pay(amount: int) -> str:
    return receipt(request_payment(amount), amount)


def tokens(mailbox: Path) -> list[dict[str, object]]:
    if not mailbox.exists():
        return []
    return [json.loads(line) for line in mailbox.read_text().splitlines()]
