"""The one `Agent` interface, and the target-position helper that rule and model agents share.

Every agent, LLM or quant, implements `decide(snapshot, account) -> decisions`. Agents that can compute their
target positions for a whole history at once also implement `decide_batch(market) -> BatchSignals`; the batch
kernel then replays them with the same fill, fee, slippage, stop and funding rules as the step loop, and a parity
test holds the two paths to identical fills.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from arena_lib.core.types import Action, Decision, Position

if TYPE_CHECKING:
    from arena_lib.data.market import MarketData, SymbolSeries
    from arena_lib.data.snapshot import MarketSnapshot


@dataclass(frozen=True, slots=True)
class AccountView:
    """What an agent may know about its own (isolated) account when it decides."""

    cash: float
    equity: float
    initial_cash: float
    positions: Mapping[str, Position]

    def direction(self, symbol: str) -> int:
        pos = self.positions.get(symbol)
        return 0 if pos is None else pos.direction


@runtime_checkable
class Agent(Protocol):
    """Anything that turns a market snapshot and its account into per-symbol decisions."""

    name: str

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]: ...


@dataclass(frozen=True)
class BatchSignals:
    """Target positions for a whole history, aligned with `MarketData` rows x symbols.

    `target` is the signed fraction of equity to hold (+ long, - short, 0 flat, NaN = no opinion, keep what is
    held). Stops and take-profits are absolute prices set at signal time (NaN = none).
    """

    target: np.ndarray
    stop_loss: np.ndarray | None = None
    take_profit: np.ndarray | None = None
    leverage: float = 1.0


@runtime_checkable
class BatchAgent(Agent, Protocol):
    def decide_batch(self, market: MarketData) -> BatchSignals: ...


def decision_from_target(
    symbol: str,
    target: float,
    current_direction: int,
    leverage: float = 1.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    reason: str = "",
) -> Decision | None:
    """Translate a target position into the decision that moves toward it (None when nothing changes).

    The batch kernel applies the same rule: NaN keeps what is held; 0 closes; a target on the other side of the
    current position (or from flat) enters; the same side holds (no pyramiding, no resizing).
    """
    if math.isnan(target):
        return None
    if target == 0.0:
        if current_direction == 0:
            return None
        return Decision(symbol, Action.CLOSE, size=0.0, leverage=leverage, reason=reason)
    want = 1 if target > 0 else -1
    if want == current_direction:
        return None
    action = Action.ENTER_LONG if want > 0 else Action.ENTER_SHORT
    return Decision(
        symbol, action, size=abs(target), leverage=leverage, stop_loss=stop_loss, take_profit=take_profit, reason=reason
    )


def exit_levels(
    close: float | np.ndarray, direction: float | np.ndarray, stop_loss_pct: float, take_profit_pct: float
) -> tuple[Any, Any]:
    """Absolute stop-loss and take-profit prices from the signal bar's close and the position's direction.

    Works on one price or on whole (bars x symbols) arrays, so the step and batch paths set the same levels.
    A percentage of 0 means that exit is not used (None).
    """
    stop = close * (1.0 - direction * stop_loss_pct) if stop_loss_pct > 0 else None
    take = close * (1.0 + direction * take_profit_pct) if take_profit_pct > 0 else None
    return stop, take


class TargetAgent:
    """Base for vectorizable agents: define the target both per step and for a whole series.

    Subclasses implement `target_now(closes)` for the step loop and `target_series(series)` for the batch path;
    `tests/engine/test_parity.py` checks they agree on real data. Optional percentage stop-loss and take-profit are
    turned into absolute prices from the signal bar's close, identically on both paths.
    """

    name: str = "target"
    lookback: int = 1  # closes needed by target_now

    def __init__(
        self, fraction: float = 1.0, leverage: float = 1.0, stop_loss_pct: float = 0.0, take_profit_pct: float = 0.0
    ) -> None:
        self.fraction = float(fraction)
        self.leverage = float(leverage)
        self.stop_loss_pct = float(stop_loss_pct)
        self.take_profit_pct = float(take_profit_pct)

    # -- to implement -------------------------------------------------------------------------------------------
    def target_now(self, closes: np.ndarray) -> float:
        """Target (in units of `fraction`) from the last `lookback` closes, oldest first; NaN = no opinion."""
        raise NotImplementedError

    def target_series(self, series: SymbolSeries) -> np.ndarray:
        """The same target for every bar of one symbol's history, computed without look-ahead."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------------------------
    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        out: list[Decision] = []
        for sym in snapshot.symbols:
            if not snapshot.has_bar(sym):
                continue
            closes = snapshot.closes(sym, self.lookback)
            if len(closes) < self.lookback:
                continue
            target = self.target_now(closes) * self.fraction
            direction = 0 if math.isnan(target) or target == 0 else (1 if target > 0 else -1)
            stop, take = exit_levels(float(closes[-1]), direction, self.stop_loss_pct, self.take_profit_pct)
            d = decision_from_target(sym, target, account.direction(sym), self.leverage, stop, take, self.name)
            if d is not None:
                out.append(d)
        return out

    def decide_batch(self, market: MarketData) -> BatchSignals:
        n, m = market.close.shape
        target = np.full((n, m), np.nan)
        for j, sym in enumerate(market.symbols):
            s = market.series[sym]
            t = np.asarray(self.target_series(s), dtype=np.float64) * self.fraction
            t[: self.lookback - 1] = np.nan
            rows = np.searchsorted(market.times, s.times)
            target[rows, j] = t
        direction = np.sign(np.nan_to_num(target))
        stop, take = exit_levels(market.close, direction, self.stop_loss_pct, self.take_profit_pct)
        return BatchSignals(target=target, stop_loss=stop, take_profit=take, leverage=self.leverage)
