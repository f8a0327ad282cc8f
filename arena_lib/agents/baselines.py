"""Baseline agents: the control group every LLM and model agent is compared against.

Each computes its target per step from a window of closes and, for the batch path, for a whole series with the
same arithmetic (numpy's pairwise sum over the same contiguous window), so both paths see bit-identical signals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from arena_lib.agents.base import AccountView, TargetAgent
from arena_lib.core.types import Decision
from arena_lib.data.market import SymbolSeries
from arena_lib.data.snapshot import MarketSnapshot


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Trailing mean over `n` values; NaN for the first n-1 (same summation as `np.mean` on the window)."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1 :] = sliding_window_view(x, n).mean(axis=1)
    return out


def _rolling_std(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1 :] = sliding_window_view(x, n).std(axis=1)
    return out


class NoOpAgent:
    """Never trades: the cash benchmark, and the loop-overhead benchmark."""

    name = "noop"

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]:
        return ()


class BuyAndHold(TargetAgent):
    """Goes long `fraction` of equity in every symbol at the first bar and holds."""

    name = "buy_and_hold"
    lookback = 1

    def target_now(self, closes: np.ndarray) -> float:
        return 1.0

    def target_series(self, series: SymbolSeries) -> np.ndarray:
        return np.ones(len(series.close))


class SmaCross(TargetAgent):
    """Long while the fast SMA of closes is above the slow one; flat (or short, if allowed) otherwise."""

    name = "sma_cross"

    def __init__(self, fast: int = 24, slow: int = 96, allow_short: bool = False, **kwargs: float) -> None:
        super().__init__(**kwargs)
        if not 0 < fast < slow:
            raise ValueError(f"sma_cross needs 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow, self.allow_short = int(fast), int(slow), bool(allow_short)
        self.lookback = self.slow

    def _signal(self, fast: np.ndarray | float, slow: np.ndarray | float) -> np.ndarray:
        down = -1.0 if self.allow_short else 0.0
        return np.where(np.asarray(fast) > np.asarray(slow), 1.0, down)

    def target_now(self, closes: np.ndarray) -> float:
        return float(self._signal(np.mean(closes[-self.fast :]), np.mean(closes)))

    def target_series(self, series: SymbolSeries) -> np.ndarray:
        fast, slow = _rolling_mean(series.close, self.fast), _rolling_mean(series.close, self.slow)
        out = self._signal(fast, slow)
        out[np.isnan(slow)] = np.nan
        return out


class Momentum(TargetAgent):
    """Time-series momentum: long when the return over `lookback` bars exceeds `threshold`, else flat/short."""

    name = "momentum"

    def __init__(self, window: int = 168, threshold: float = 0.0, allow_short: bool = False, **kwargs: float) -> None:
        super().__init__(**kwargs)
        if window < 1:
            raise ValueError(f"momentum needs window >= 1, got {window}")
        self.window, self.threshold, self.allow_short = int(window), float(threshold), bool(allow_short)
        self.lookback = self.window + 1

    def _signal(self, ret: np.ndarray | float) -> np.ndarray:
        r = np.asarray(ret)
        out = np.where(r > self.threshold, 1.0, 0.0)
        if self.allow_short:
            out = np.where(r < -self.threshold, -1.0, out)
        return out

    def target_now(self, closes: np.ndarray) -> float:
        return float(self._signal(closes[-1] / closes[0] - 1.0))

    def target_series(self, series: SymbolSeries) -> np.ndarray:
        c = series.close
        ret = np.full(len(c), np.nan)
        ret[self.window :] = c[self.window :] / c[: -self.window] - 1.0
        out = self._signal(ret)
        out[np.isnan(ret)] = np.nan
        return out


class MeanReversion(TargetAgent):
    """Bollinger-style mean reversion: long when the close is `entry_z` deviations below its mean.

    Long-only, it goes flat once z >= -exit_z; with shorts it goes flat when |z| <= exit_z. In between it has no
    opinion (NaN), so a position is held until its exit condition.
    """

    name = "mean_reversion"

    def __init__(
        self, window: int = 48, entry_z: float = 2.0, exit_z: float = 0.0, allow_short: bool = False, **kwargs: float
    ) -> None:
        super().__init__(**kwargs)
        if window < 2 or entry_z <= exit_z:
            raise ValueError(
                f"mean_reversion needs window >= 2 and entry_z > exit_z, got {window}, {entry_z}, {exit_z}"
            )
        self.window, self.entry_z, self.exit_z = int(window), float(entry_z), float(exit_z)
        self.allow_short = bool(allow_short)
        self.lookback = self.window

    def _signal(self, z: np.ndarray | float) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        flat = (np.abs(z) <= self.exit_z) if self.allow_short else (z >= -self.exit_z)
        out = np.where(flat, 0.0, np.nan)
        out = np.where(z < -self.entry_z, 1.0, out)
        if self.allow_short:
            out = np.where(z > self.entry_z, -1.0, out)
        return out

    def _z(self, close: np.ndarray | float, mean: np.ndarray | float, std: np.ndarray | float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.asarray(close) - np.asarray(mean)) / np.asarray(std)

    def target_now(self, closes: np.ndarray) -> float:
        return float(self._signal(self._z(closes[-1], np.mean(closes), np.std(closes))))

    def target_series(self, series: SymbolSeries) -> np.ndarray:
        c = series.close
        z = self._z(c, _rolling_mean(c, self.window), _rolling_std(c, self.window))
        return self._signal(z)
