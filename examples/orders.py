"""The order flow from the README: fetch, charge (idempotently), ship.

    waypost worker examples/orders.py &
    waypost start examples/orders.py:fulfil --input '{"order_id": 7}' --key order-7
"""

from __future__ import annotations

import waypost as wp


@wp.task(retries=3, backoff=wp.Backoff(initial=0.5, factor=2.0, max=30.0, jitter=True),
         timeout=30)
def fetch_order(order_id: int) -> dict:
    return {"id": order_id, "amount_cents": 1250 + order_id, "address": "1 Main St"}


@wp.task(timeout=30)
def charge(order: dict, ctx: wp.Context) -> dict:
    # A real payment API receives ctx.idempotency_key, so a retried charge is not doubled.
    return {"order": order["id"], "charged": order["amount_cents"],
            "idempotency_key": ctx.idempotency_key}


@wp.task(timeout=30)
def ship(order: dict, receipt: dict) -> str:
    return f"shipped order {order['id']} to {order['address']} (paid {receipt['charged']})"


@wp.flow()
def fulfil(order_id: int) -> str:
    order = fetch_order(order_id)
    receipt = charge(order)
    return ship(order, receipt)
