"""Supervised datasets for model training: a point-in-time feature panel, forward-return labels, time-ordered splits.

Why this module exists: a model, its cross-validation and its backtest must agree on what row ``(t, symbol)``
means. Here it means: the features known at the close of the bar that opens at ``t`` (as ``compute_panel`` builds
them), and the label earned by a position entered at that close and held ``horizon`` bars of the symbol's own
history. ``forward_return`` is that simple return, before costs, so evaluation can score predictions against
what trading them would have earned.

Splits are made over the panel's unique *timestamps*, never over rows: a panel has several symbols per
timestamp, and a split that cut between two symbols of the same bar would train on the test period. The splits
come from ``arena_lib.research.splits`` (walk-forward, purged k-fold) with the label horizon as purge, so a
training label never overlaps a test label.

Usage::

    from arena_lib.data.sample import load_sample
    frames = {s: load_sample(s, "1h", "2024-01-01", "2024-06-30") for s in ("BTC/USDT", "ETH/USDT")}
    ds = make_dataset(frames, horizon=4)
    for train, test in time_splits(ds, "walk_forward", n_splits=5):
        model.fit(ds.X.iloc[train], ds.y.iloc[train])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from arena_lib.data.sample import frame_hash
from arena_lib.features.pipeline import compute_panel, max_lookback
from arena_lib.research.splits import PurgedKFold, walk_forward_min_length, walk_forward_splits

Task = Literal["classification", "regression"]
Scheme = Literal["walk_forward", "purged_kfold"]
TASKS: tuple[str, ...] = ("classification", "regression")
SCHEMES: tuple[str, ...] = ("walk_forward", "purged_kfold")
_OHLCV = ["open", "high", "low", "close", "volume"]

DEFAULT_FEATURES: tuple[str, ...] = (
    # returns and price location
    "ret_1",
    "ret_4",
    "ret_12",
    "ret_24",
    "zscore_close_24",
    # volatility
    "vol_cc_24",
    "vol_parkinson_24",
    "vol_ratio_24_168",
    "natr_14",
    # trend and momentum
    "ema_dist_26",
    "ema_cross_12_26",
    "macd_hist",
    "efficiency_ratio_24",
    "rsi_14",
    "stoch_k_14",
    "bb_pctb_20",
    "bb_width_20",
    # the bar's shape, volume
    "candle_close_loc",
    "volume_z_24",
    "volume_ratio_24",
    "cmf_20",
    # calendar
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
)
"""Cheap, commonly informative features that need no BTC or funding context (so any symbol set works); none of
the slow complexity or regime ones (HMM, Lyapunov, entropy). Longest declared warm-up: 175 bars (``macd_hist``).
Listed in registry order, so ``compute_panel(frames, DEFAULT_FEATURES)`` has exactly these columns in this order."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and labels of a ``(timestamp, symbol)`` panel, rows sorted by time then symbol.

    ``y`` is 1.0/0.0 (forward return > 0) for classification, the forward log return for regression.
    ``forward_return`` is the simple return ``close[t+h] / close[t] - 1`` that a position entered at the close of
    row ``t`` earns over ``horizon`` bars, before costs. ``data_hash`` identifies the input bars (for MLflow).
    """

    X: pd.DataFrame
    y: pd.Series
    forward_return: pd.Series
    features: tuple[str, ...]
    horizon: int
    task: Task
    data_hash: str

    def __post_init__(self) -> None:
        if list(self.X.columns) != list(self.features):
            raise ValueError(f"X's columns {list(self.X.columns)} differ from features {list(self.features)}")
        if not (self.X.index.equals(self.y.index) and self.X.index.equals(self.forward_return.index)):
            raise ValueError("X, y and forward_return must share one (timestamp, symbol) index")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    def __len__(self) -> int:
        return len(self.X)

    def times(self) -> pd.DatetimeIndex:
        """The unique timestamps of the rows, sorted (what splits are made over)."""
        return pd.DatetimeIndex(self.X.index.get_level_values(0).unique().sort_values())

    def symbols(self) -> tuple[str, ...]:
        """The symbols present, sorted."""
        return tuple(sorted(self.X.index.get_level_values(1).unique()))

    def subset(self, rows: np.ndarray) -> Dataset:
        """The dataset restricted to row positions ``rows`` (as ``time_splits`` returns them)."""
        idx = np.asarray(rows, dtype=np.int64)
        return Dataset(
            X=self.X.iloc[idx],
            y=self.y.iloc[idx],
            forward_return=self.forward_return.iloc[idx],
            features=self.features,
            horizon=self.horizon,
            task=self.task,
            data_hash=self.data_hash,
        )


def data_hash(
    frames: Mapping[str, pd.DataFrame],
    funding: Mapping[str, pd.Series] | None = None,
    btc: pd.DataFrame | None = None,
) -> str:
    """One SHA-256 over every input: each symbol's OHLCV bars (``frame_hash``), funding and explicit BTC context.

    Symbols are hashed in sorted order, so the mapping's order does not change the hash.
    """
    digest = hashlib.sha256()
    for symbol in sorted(frames):
        digest.update(f"bars:{symbol}:{frame_hash(frames[symbol][_OHLCV])}\n".encode())
    for symbol in sorted(funding or {}):
        assert funding is not None
        digest.update(f"funding:{symbol}:{frame_hash(funding[symbol])}\n".encode())
    if btc is not None:
        digest.update(f"btc:{frame_hash(btc[_OHLCV])}\n".encode())
    return digest.hexdigest()


def _forward_returns(frame: pd.DataFrame, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Simple and log return from row ``t``'s close to the close ``horizon`` bars later (NaN at the end)."""
    close = frame["close"].to_numpy(dtype=np.float64)
    ahead = np.full(len(close), np.nan)
    ahead[: len(close) - horizon] = close[horizon:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ahead / close
        return ratio - 1.0, np.log(ratio)


def make_dataset(
    frames: Mapping[str, pd.DataFrame],
    features: Sequence[str] = DEFAULT_FEATURES,
    *,
    horizon: int = 1,
    task: str = "classification",
    funding: Mapping[str, pd.Series] | None = None,
    btc: pd.DataFrame | None = None,
    drop_warmup: bool = True,
) -> Dataset:
    """Features of every symbol in ``frames`` with their ``horizon``-bar forward labels.

    Dropped rows: the last ``horizon`` bars of each symbol (label unknown), rows with a missing or infinite
    feature, and, with ``drop_warmup`` (the default), each symbol's first ``max_lookback(features)`` bars: there
    EMA-type features still depend on where the history starts, so a live model (which sees a long history)
    would get other values than it was trained on.

    Raises:
        ValueError: an unknown task, a horizon < 1, no symbols, duplicate feature names, or no row left.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1 (bars), got {horizon!r}")
    if not frames:
        raise ValueError("make_dataset needs at least one symbol's frame")
    names = tuple(features)
    if not names:
        raise ValueError("make_dataset needs at least one feature")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate feature names in {list(names)}")
    panel = compute_panel(frames, names, funding, btc=btc)[list(names)]  # the caller's order, not the registry's
    warmup = max_lookback(names) if drop_warmup else 0

    parts = []
    for symbol, frame in frames.items():
        simple, logret = _forward_returns(frame, int(horizon))
        index = pd.MultiIndex.from_arrays(
            [pd.DatetimeIndex(frame.index).tz_convert("UTC"), pd.Index([symbol] * len(frame), dtype=object)],
            names=["timestamp", "symbol"],
        )
        usable = np.arange(len(frame)) >= warmup
        parts.append(pd.DataFrame({"fwd": simple, "log": logret, "usable": usable}, index=index))
    labels = pd.concat(parts).sort_index(level=["timestamp", "symbol"]).reindex(panel.index)
    fwd = labels["fwd"]
    log_fwd = labels["log"]
    keep_rows = labels["usable"].fillna(False)
    values = panel.to_numpy(dtype=np.float64)
    keep = keep_rows.to_numpy(dtype=bool) & np.isfinite(values).all(axis=1) & np.isfinite(log_fwd.to_numpy())
    if not keep.any():
        lengths = {s: len(f) for s, f in frames.items()}
        raise ValueError(
            f"no usable rows: every symbol needs more than warm-up {warmup} + horizon {horizon} bars, got {lengths}"
        )
    X = panel.loc[keep].astype(np.float64)
    fwd = fwd.loc[keep].rename("forward_return")
    if task == "classification":
        y = (fwd > 0).astype(np.float64).rename("y")
    else:
        y = log_fwd.loc[keep].rename("y")
    return Dataset(
        X=X,
        y=y,
        forward_return=fwd,
        features=names,
        horizon=int(horizon),
        task=task,  # type: ignore[arg-type]  # checked against TASKS above
        data_hash=data_hash(frames, funding, btc),
    )


def _time_positions(dataset: Dataset) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Unique sorted timestamps and, for each row, the position of its timestamp among them."""
    row_times = pd.DatetimeIndex(dataset.X.index.get_level_values(0))
    times = dataset.times()
    return times, np.searchsorted(times.asi8, row_times.asi8)


def _walk_forward_bars(
    n_times: int, n_splits: int, gap: int, train_bars: int | None, expanding: bool, what: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Walk-forward folds over ``n_times`` bars whose back-to-back test windows end at the last bar."""
    if train_bars is None:
        need = walk_forward_min_length(1, 1, gap=gap, n_folds=n_splits)
        test = (n_times - gap) // (n_splits + 1)
        train = n_times - gap - n_splits * test
    else:
        need = walk_forward_min_length(train_bars, 1, gap=gap, n_folds=n_splits)
        test = (n_times - train_bars - gap) // n_splits if n_times >= need else 0
        train = train_bars
    if n_times < need or test < 1:
        raise ValueError(f"dataset has {n_times} bars (unique timestamps); {what} need at least {need}")
    offset = n_times - (train + gap + n_splits * test)  # untestable remainder: leave it at the start
    folds = []
    for tr, te in walk_forward_splits(n_times - offset, train, test, expanding=expanding, gap=gap):
        tr_pos = np.arange(0, tr[-1] + 1 + offset) if expanding else tr + offset
        folds.append((tr_pos.astype(np.int64), (te + offset).astype(np.int64)))
    return folds


def time_splits(
    dataset: Dataset,
    scheme: Scheme = "walk_forward",
    n_splits: int = 5,
    *,
    embargo: int = 0,
    train_bars: int | None = None,
    expanding: bool = True,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_rows, test_rows)`` position arrays, time-ordered, split over the dataset's unique timestamps.

    ``walk_forward``: ``n_splits`` back-to-back test windows ending at the last timestamp; training is everything
    before (``expanding``) or the last ``train_bars`` bars before (rolling), with a gap of ``horizon + embargo``
    bars so no training label reaches into the test window. Without ``train_bars`` the first training window is
    as long as the data allows after the test windows (at least one test window long).
    ``purged_kfold``: López de Prado's purged k-fold (``PurgedKFold``) with the label horizon as purge and
    ``embargo`` bars dropped after each test fold.

    Raises:
        ValueError: an unknown scheme, bad sizes, or a dataset too short for the folds (the message names the
            minimum number of bars).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if isinstance(embargo, bool) or not isinstance(embargo, (int, np.integer)) or embargo < 0:
        raise ValueError(f"embargo must be an integer >= 0 (bars), got {embargo!r}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"n_splits must be an integer >= 1, got {n_splits!r}")
    if train_bars is not None and (isinstance(train_bars, bool) or int(train_bars) < 1):
        raise ValueError(f"train_bars must be an integer >= 1 or None, got {train_bars!r}")
    times, row_pos = _time_positions(dataset)
    n_times = len(times)
    h = dataset.horizon
    if scheme == "walk_forward":
        gap = h + int(embargo)
        what = f"{n_splits} walk-forward folds with a {gap}-bar gap (horizon {h} + embargo {embargo})"
        if train_bars is not None:
            what += f" and {train_bars} training bars"
        bar_folds = _walk_forward_bars(n_times, int(n_splits), gap, train_bars, expanding, what)
    else:
        try:
            bar_folds = list(PurgedKFold(n_splits=int(n_splits), embargo=int(embargo), label_horizon=h).split(n_times))
        except ValueError as exc:
            raise ValueError(f"dataset has {n_times} bars (unique timestamps): {exc}") from exc
    out = []
    for train_t, test_t in bar_folds:
        out.append((_rows_at(row_pos, train_t, n_times), _rows_at(row_pos, test_t, n_times)))
    return out


def _rows_at(row_pos: np.ndarray, time_positions: np.ndarray, n_times: int) -> np.ndarray:
    """Row positions whose timestamp position is in ``time_positions`` (increasing)."""
    mask = np.zeros(n_times, dtype=bool)
    mask[time_positions] = True
    return np.flatnonzero(mask[row_pos]).astype(np.int64)


__all__ = ["DEFAULT_FEATURES", "Dataset", "data_hash", "make_dataset", "time_splits"]
