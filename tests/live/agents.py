"""TEST FIXTURE agents for live-trading tests: deterministic, so every bar's orders are known in advance."""

from __future__ import annotations

from typing import Any, ClassVar

from arena_lib.agents.base import AccountView
from arena_lib.agents.turn import Turn
from arena_lib.core.types import Action, Decision
from arena_lib.data.snapshot import MarketSnapshot


class Alternator:
    """On BTC/USDT: enter long when flat (stop 3% below, take-profit 3% above), close when long. Holds ETH."""

    name = "alternator"

    def __init__(self, fraction: float = 0.2, leverage: float = 2.0, stop_pct: float = 0.03) -> None:
        self.fraction, self.leverage, self.stop_pct = fraction, leverage, stop_pct

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        sym = "BTC/USDT"
        close = snapshot.bar(sym).close
        if account.direction(sym) == 0:
            return [
                Decision(
                    sym,
                    Action.ENTER_LONG,
                    size=self.fraction,
                    leverage=self.leverage,
                    stop_loss=close * (1 - self.stop_pct),
                    take_profit=close * (1 + self.stop_pct),
                    reason="fixture: enter when flat",
                )
            ]
        return [Decision(sym, Action.CLOSE, size=0.0, reason="fixture: close when long")]


class Holder:
    """Enters long BTC/USDT once (no exits on the exchange), then holds: for stop, import and flatten tests."""

    name = "holder"

    def __init__(self, fraction: float = 0.2, stop_pct: float = 0.03) -> None:
        self.fraction, self.stop_pct = fraction, stop_pct

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        sym = "BTC/USDT"
        if account.direction(sym) != 0:
            return []
        close = snapshot.bar(sym).close
        stop = close * (1 - self.stop_pct) if self.stop_pct else None
        return [Decision(sym, Action.ENTER_LONG, size=self.fraction, leverage=2.0, stop_loss=stop, reason="fixture")]


class Recorder(Holder):
    """A turn agent (as LLM agents are) that enters like `Holder` and records every `TurnContext` it is given."""

    name = "recorder"
    contexts: ClassVar[list[Any]] = []  # class-level: the job rebuilds its agents on every invocation

    async def play_turn(self, snapshot: MarketSnapshot, account: AccountView, context: Any) -> Turn:
        Recorder.contexts.append(context)
        return Turn(self.decide(snapshot, account))
