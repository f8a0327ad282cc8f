"""Deterministic client order ids: the same run, agent, bar, symbol and purpose always give the same id.

A resumed bar derives the ids it may already have sent, so it can ask the exchange before sending again, and a
fill found on the exchange names the purpose of the order that made it. Binance limits ids to 36 characters of
`[.A-Z:/a-z0-9_-]`; the id is a prefix, a purpose letter and a hash.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

PREFIX = "ar"


class Purpose(StrEnum):
    """What an order is for; the letter in its client id."""

    ENTRY = "e"
    CLOSE = "c"
    STOP = "s"
    TAKE = "t"
    FLATTEN = "f"


def client_order_id(run_id: str, agent: str, bar_ns: int, symbol: str, purpose: Purpose) -> str:
    """`ar<purpose>-<30 hex>`: 34 characters, the same on every call with the same inputs."""
    digest = hashlib.sha256(f"{run_id}/{agent}/{bar_ns}/{symbol}/{purpose.value}".encode()).hexdigest()
    return f"{PREFIX}{purpose.value}-{digest[:30]}"


def purpose_of(client_id: str | None) -> Purpose | None:
    """The purpose of one of our client ids; None for an order this platform did not make (a manual trade)."""
    if not client_id or len(client_id) != 34 or not client_id.startswith(PREFIX) or client_id[3] != "-":
        return None
    try:
        return Purpose(client_id[2])
    except ValueError:
        return None
