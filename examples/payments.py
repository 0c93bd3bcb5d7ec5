"""The article's two hard cases, as state machines.

    waypost worker examples/payments.py &
    waypost start examples/payments.py:Checkout --input '{"order": 7}' --key order-7
    waypost send order-7 payment.confirmed --payload '{"reference": "pay_123"}' --id pay_123

`Checkout` waits for the payment provider's confirmation before it ships, holding no
worker while it waits, and gives up after an hour. `Payment` is "if payment fails, wait
and retry, but if it fails three times, escalate to a human, but if the human is offline,
pause until tomorrow": restarted anywhere in that story, it resumes in the state it was
in, so the charge that failed is never re-run behind the person's back, and one that
succeeded is never run again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import waypost as wp


class CardDeclined(Exception):
    """The bank said no; retrying soon may help, retrying forever does not."""


@wp.task(retries=2, backoff=wp.Backoff(initial=1.0, factor=2.0, max=60.0), timeout=30)
def request_payment(data: dict[str, Any], ctx: wp.Context) -> dict[str, Any]:
    # A real provider gets ctx.idempotency_key: the same on every retry of this visit.
    return {"payment_request": f"req-{data['order']}"}


@wp.task(timeout=60)
def ship(data: dict[str, Any]) -> dict[str, Any]:
    return {"shipped": f"order {data['order']} (payment {data['reference']})"}


class Checkout(wp.Machine):
    initial = "requesting_payment"
    events = ("payment.confirmed", "payment.failed")
    requesting_payment = wp.State(request_payment, done="awaiting_confirmation",
                                  errors={Exception: "cancelled"})
    awaiting_confirmation = wp.State(
        on={"payment.confirmed": "shipping", "payment.failed": "cancelled"},
        after=timedelta(hours=1), then="cancelled", unhandled="ignore")
    shipping = wp.State(ship, done="shipped", errors={Exception: "not_shipped"})
    shipped = wp.Final()
    cancelled = wp.Final(failed=True)
    not_shipped = wp.Final(failed=True)  # paid but not sent: the data says why


@wp.task(retries=5, backoff=wp.Backoff(initial=2.0, factor=2.0, max=300.0), timeout=30)
def charge_card(data: dict[str, Any], ctx: wp.Context) -> dict[str, Any]:
    if data.get("card") == "declined":
        raise CardDeclined(f"card of order {data['order']} declined")
    return {"charged": data["amount"], "charge_key": ctx.idempotency_key}


@wp.task(timeout=10)
def page_the_on_call(data: dict[str, Any]) -> dict[str, Any]:
    return {"paged": f"order {data['order']}: {data['last_error']['message']}"}


class Payment(wp.Machine):
    initial = "charging"
    events = ("retry", "refund")
    charging = wp.State(charge_card, retries=2, done="paid",  # three tries, with backoff
                        errors={CardDeclined: "escalating"})
    escalating = wp.State(page_the_on_call, done="awaiting_a_person",
                          errors={Exception: "awaiting_a_person"})  # paging failed: wait
    awaiting_a_person = wp.State(on={"retry": "charging", "refund": "refunded"},
                                 after=timedelta(hours=4), then="paused")
    paused = wp.State(on={"retry": "charging", "refund": "refunded"},
                      until="09:00 Europe/Paris", then="escalating")
    paid = wp.Final()
    refunded = wp.Final(failed=True)
