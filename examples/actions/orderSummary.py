"""Summarises an order's items and total from the arguments the bot collected."""

import json
from decimal import Decimal


def execute_action(context: Context):
    items = context["args"]["items"]
    if isinstance(items, str):
        items = json.loads(items)
    total = sum(Decimal(str(i["price"])) * int(i.get("qty", 1)) for i in items)
    print(f"summarising {len(items)} items")
    return {
        "customer": context["args"].get("customerName", "customer"),
        "lines": [f'{i.get("qty", 1)} x {i["name"]}' for i in items],
        "total": str(total),
    }
