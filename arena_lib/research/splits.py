"""Time-series train/test splits that do not leak the future into training.

Two schemes:

* **Walk-forward** (:func:`walk_forward_splits`): train on a window, test on the bars that follow it, slide (or
  grow) the window and repeat. Every test bar lies strictly after every training bar of its fold.
* **Purged k-fold** (:class:`PurgedKFold`), López de Prado, *Advances in Financial Machine Learning* (2018),
  ch. 7: contiguous test folds, training on everything else *minus* (a) the samples whose label windows overlap a
  test label window (purging) and (b) an embargo of bars right after the test fold, because serially correlated
  features and labels there still carry information about the test period.

Label windows. A sample at bar ``i`` with ``label_horizon = h`` has a label that depends on bars ``i .. i + h``
(e.g. the forward return from the close of bar ``i`` to the close of bar ``i + h``). Its window is the closed
interval ``[t_i, t_i + h]``. A training sample is purged when its window intersects ``[t_a, max_j (t_j + h)]``,
the union of the test fold's windows. Windows that only *touch* count as overlapping (the conservative choice of
the book's ``getTrainTimes``, snippet 7.1), so ``label_horizon = 24`` purges exactly the 24 samples before the
test fold and the 24 after it; ``label_horizon = 0`` (labels known at their own bar) purges nothing.

Embargo. After the purged samples that follow the test fold, the next ``e`` samples are dropped too, as in the
book's ``PurgedKFold`` (snippet 7.3): ``e = embargo`` bars for an ``int``, ``e = floor(embargo * n)`` for a float
fraction in ``[0, 1)``, or every sample starting within ``embargo`` of the last test label for a ``pd.Timedelta``.
No embargo is applied before the test fold.

Indices are integer positions (``numpy.int64`` arrays), so they work with ``.iloc`` on frames with a UTC
``DatetimeIndex`` and with plain arrays alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PurgedKFold",
    "purged_kfold_min_length",
    "walk_forward_min_length",
    "walk_forward_splits",
]

Split = tuple[np.ndarray, np.ndarray]


# ------------------------------------------------------------------------------------------------ helpers


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, or a ValueError naming the argument (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _n_samples(data: int | Sized) -> int:
    """Number of samples in `data`: an int count, or anything with a length (array, index, frame)."""
    if isinstance(data, bool):
        raise ValueError(f"expected a sample count or a sized object, got {data!r}")
    if isinstance(data, (int, np.integer)):
        if data < 0:
            raise ValueError(f"sample count must be >= 0, got {data}")
        return int(data)
    return len(data)


def _datetime_index(data: Any) -> pd.DatetimeIndex | None:
    """The DatetimeIndex of `data` (an index itself, or a Series/DataFrame's index), else None."""
    if isinstance(data, pd.DatetimeIndex):
        return data
    index = getattr(data, "index", None)
    if isinstance(data, (pd.Series, pd.DataFrame)) and isinstance(index, pd.DatetimeIndex):
        return index
    return None


# ------------------------------------------------------------------------------------------------ walk-forward


def walk_forward_min_length(train: int, test: int, *, step: int | None = None, gap: int = 0, n_folds: int = 1) -> int:
    """Bars needed for `n_folds` walk-forward folds: ``train + gap + test + (n_folds - 1) * step``.

    `step` defaults to `test` (back-to-back test windows), as in :func:`walk_forward_splits`.
    """
    train = _positive_int(train, "train")
    test = _positive_int(test, "test")
    step = test if step is None else _positive_int(step, "step")
    gap = _positive_int(gap, "gap", minimum=0)
    n_folds = _positive_int(n_folds, "n_folds")
    return train + gap + test + (n_folds - 1) * step


def walk_forward_splits(
    n: int | Sized,
    train: int,
    test: int,
    step: int | None = None,
    expanding: bool = False,
    gap: int = 0,
) -> Iterator[Split]:
    """Walk-forward ``(train_idx, test_idx)`` position arrays over `n` bars, oldest fold first.

    Fold ``k`` (``k = 0, 1, ...``) trains on ``[s_k, train + k*step)`` with ``s_k = k*step`` (rolling) or
    ``s_k = 0`` (``expanding=True``), skips `gap` bars, and tests on the next `test` bars. `step` defaults to
    `test`, so the test windows tile the data without overlap. Folds stop when the next test window would run
    past the end; trailing bars that do not fill a whole test window are not tested. Use `gap` >= the label
    horizon when labels look ahead, so that no training label overlaps the test window.

    Args:
        n: number of bars, or a sized object (array, frame, index) whose length is used.

    Raises:
        ValueError: a non-positive size, or fewer bars than one fold needs (the message gives the minimum).
    """
    total = _n_samples(n)
    need = walk_forward_min_length(train, test, step=step, gap=gap)
    step_ = test if step is None else int(step)
    if total < need:
        raise ValueError(
            f"walk-forward window has {total} bars; train {train} + gap {gap} + test {test} need at least {need}"
        )
    return _walk_forward(total, int(train), int(test), step_, bool(expanding), int(gap))


def _walk_forward(n: int, train: int, test: int, step: int, expanding: bool, gap: int) -> Iterator[Split]:
    k = 0
    while True:
        train_end = train + k * step
        test_start = train_end + gap
        test_end = test_start + test
        if test_end > n:
            return
        train_start = 0 if expanding else k * step
        yield np.arange(train_start, train_end, dtype=np.int64), np.arange(test_start, test_end, dtype=np.int64)
        k += 1


# ------------------------------------------------------------------------------------------------ purged k-fold


def _embargo_bars(embargo: int | float, n: int) -> int:
    """Embargo length in bars: the int itself, or ``floor(fraction * n)`` (López de Prado's ``int(n * pct)``)."""
    if isinstance(embargo, (int, np.integer)):
        return int(embargo)
    return math.floor(float(embargo) * n)


def _describe_embargo(embargo: int | float | pd.Timedelta) -> str:
    if isinstance(embargo, pd.Timedelta):
        return f"{embargo} embargo"
    if isinstance(embargo, (int, np.integer)):
        return f"{int(embargo)}-bar embargo"
    return f"{float(embargo) * 100:g}% embargo"


def _check_embargo(embargo: Any) -> int | float | pd.Timedelta:
    if isinstance(embargo, bool):
        raise ValueError(f"embargo must be an int (bars), a float fraction or a pd.Timedelta, got {embargo!r}")
    if isinstance(embargo, pd.Timedelta):
        if embargo < pd.Timedelta(0):
            raise ValueError(f"embargo must be >= 0, got {embargo}")
        return embargo
    if isinstance(embargo, (int, np.integer)):
        if embargo < 0:
            raise ValueError(f"embargo must be >= 0 bars, got {embargo}")
        return int(embargo)
    if isinstance(embargo, (float, np.floating)):
        if not 0.0 <= float(embargo) < 1.0:
            raise ValueError(
                f"a float embargo is a fraction of the sample in [0, 1), got {embargo}; "
                "pass an int for a number of bars"
            )
        return float(embargo)
    raise ValueError(f"embargo must be an int (bars), a float fraction or a pd.Timedelta, got {embargo!r}")


def _check_horizon(label_horizon: Any) -> int | pd.Timedelta:
    if isinstance(label_horizon, pd.Timedelta):
        if label_horizon < pd.Timedelta(0):
            raise ValueError(f"label_horizon must be >= 0, got {label_horizon}")
        return label_horizon
    return _positive_int(label_horizon, "label_horizon", minimum=0)


def _fold_bounds(n: np.ndarray, k: int, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of test fold `f` of `k` for sample counts `n`, as ``np.array_split`` cuts them."""
    size, extra = n // k, n % k
    start = f * size + np.minimum(f, extra)
    return start, start + size + (f < extra)


def _bar_train_sizes(n: np.ndarray, k: int, horizon: int, embargo: int | float) -> np.ndarray:
    """Smallest training-set size over the `k` folds, for each sample count in `n` (bar-based purge/embargo)."""
    if isinstance(embargo, (int, np.integer)):
        e = np.full(n.shape, int(embargo))
    else:
        e = np.floor(float(embargo) * n).astype(np.int64)
    smallest = np.full(n.shape, np.iinfo(np.int64).max)
    for f in range(k):
        a, b = _fold_bounds(n, k, f)
        before = np.maximum(0, a - horizon)
        after = np.maximum(0, n - (b + horizon + e))
        smallest = np.minimum(smallest, before + after)
    return smallest


def purged_kfold_min_length(
    n_splits: int, label_horizon: int = 0, embargo: int | float = 0.0, min_train: int = 1
) -> int:
    """Fewest bars for which every purged fold keeps at least `min_train` training samples.

    A sufficient length comes from the worst (middle) fold, which loses its own ``ceil(n/k)`` bars, ``h`` purged
    bars on each side and ``e`` embargoed bars: ``n (1 - 1/k - pct) >= min_train + 2h + e_bars + (k-1)/k``. The
    exact minimum is then found below that bound by evaluating the fold sizes, so that *every* length at or above
    the returned one works (the floor of a fractional embargo makes the raw condition non-monotone).

    Raises:
        ValueError: bad arguments, or a fractional embargo so large that no length works
            (``pct >= 1 - 1/n_splits``).
    """
    k = _positive_int(n_splits, "n_splits", minimum=2)
    h = _positive_int(label_horizon, "label_horizon", minimum=0)
    e = _check_embargo(embargo)
    if isinstance(e, pd.Timedelta):
        raise ValueError("a pd.Timedelta embargo has no length in bars; the minimum depends on the timestamps")
    min_train = _positive_int(min_train, "min_train")
    pct = float(e) if isinstance(e, float) else 0.0
    e_bars = int(e) if isinstance(e, int) else 0
    slack = 1.0 - 1.0 / k - pct
    if slack <= 0:
        raise ValueError(f"a {pct:.0%} embargo leaves no training data with {k} folds; use a smaller embargo")
    purge = 2 * h if k >= 3 else h
    bound = max(k, math.ceil((min_train + purge + e_bars + (k - 1) / k) / slack - 1e-9))
    lengths = np.arange(k, bound + 1, dtype=np.int64)
    failing = lengths[_bar_train_sizes(lengths, k, h, e) < min_train]
    return int(failing.max()) + 1 if len(failing) else k


class PurgedKFold:
    """K-fold cross-validation for labels that look ahead: contiguous test folds, purged and embargoed training.

    López de Prado (2018), *Advances in Financial Machine Learning*, §7.4: ordinary k-fold leaks because
    training labels that overlap the test period carry its outcome (purging fixes that) and because serial
    correlation carries information from the test period into the bars right after it (the embargo fixes that).
    Test folds are the contiguous blocks of ``np.array_split(arange(n), n_splits)`` in time order; see the module
    docstring for the exact overlap and embargo rules.

    Args:
        n_splits: number of folds, >= 2.
        embargo: bars dropped after each test fold's last label: ``int`` bars, a ``float`` fraction of the sample
            in ``[0, 1)`` (``floor(embargo * n)`` bars), or a ``pd.Timedelta`` (needs a DatetimeIndex).
        label_horizon: how far each label looks ahead, in bars (``int``) or as a ``pd.Timedelta`` (needs a
            DatetimeIndex; then windows are in time, so gaps in the data are respected).
        min_train: fewest training samples a fold may keep; fewer raises ``ValueError`` in :meth:`split`.

    Example (``frame`` indexed by a UTC DatetimeIndex, labels = 24-bar forward returns)::

        cv = PurgedKFold(n_splits=5, embargo=0.01, label_horizon=24)
        for train_idx, test_idx in cv.split(frame):
            model.fit(X.iloc[train_idx], y.iloc[train_idx])
    """

    def __init__(
        self,
        n_splits: int = 5,
        embargo: int | float | pd.Timedelta = 0.0,
        label_horizon: int | pd.Timedelta = 0,
        min_train: int = 1,
    ) -> None:
        self.n_splits = _positive_int(n_splits, "n_splits", minimum=2)
        self.embargo = _check_embargo(embargo)
        self.label_horizon = _check_horizon(label_horizon)
        self.min_train = _positive_int(min_train, "min_train")

    def __repr__(self) -> str:
        return (
            f"PurgedKFold(n_splits={self.n_splits}, embargo={self.embargo!r}, "
            f"label_horizon={self.label_horizon!r}, min_train={self.min_train})"
        )

    @property
    def _in_time(self) -> bool:
        return isinstance(self.label_horizon, pd.Timedelta) or isinstance(self.embargo, pd.Timedelta)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds (scikit-learn's splitter protocol)."""
        return self.n_splits

    def min_length(self) -> int:
        """Fewest bars this splitter accepts (bar-based horizon and embargo only); see :func:`purged_kfold_min_length`.

        Raises:
            ValueError: the horizon or embargo is a ``pd.Timedelta`` (the minimum then depends on the timestamps).
        """
        if isinstance(self.label_horizon, pd.Timedelta) or isinstance(self.embargo, pd.Timedelta):
            raise ValueError("min_length needs a label_horizon and an embargo in bars, not pd.Timedelta")
        return purged_kfold_min_length(self.n_splits, self.label_horizon, self.embargo, self.min_train)

    def split(self, X: int | Sized, y: Any = None, groups: Any = None) -> Iterator[Split]:
        """Yield ``(train_idx, test_idx)`` integer positions for each fold, in time order.

        Args:
            X: a sample count, an array/frame (its length), a ``DatetimeIndex``, or a Series/DataFrame indexed by
                one. Timestamps are required (and must be increasing) when the horizon or embargo is a
                ``pd.Timedelta``.

        Raises:
            ValueError: too few samples for the folds (the message gives the minimum length), or timestamps that
                are missing or not increasing when time-based windows were asked for.
        """
        n = _n_samples(X)
        index = _datetime_index(X)
        if index is not None and not index.is_monotonic_increasing:
            raise ValueError("the DatetimeIndex must be sorted in increasing time order for purged k-fold")
        if self._in_time:
            if index is None:
                raise ValueError(
                    "a pd.Timedelta label_horizon or embargo needs a DatetimeIndex (or a frame indexed by one)"
                )
            starts = index.as_unit("ns").asi8.astype(np.int64)
        else:
            need = self.min_length()
            if n < need:
                raise ValueError(
                    f"training window has {n} bars; {self.n_splits} folds with {self.label_horizon}-bar purge and "
                    f"{_describe_embargo(self.embargo)} need at least {need}"
                )
            starts = np.arange(n, dtype=np.int64)
        folds = list(self._folds(starts))
        if self._in_time:
            for f, (train, _) in enumerate(folds):
                if len(train) < self.min_train:
                    raise ValueError(
                        f"fold {f}: a {self.label_horizon} purge and {_describe_embargo(self.embargo)} leave "
                        f"{len(train)} training samples of {n}; need at least {self.min_train}"
                    )
        return iter(folds)

    def _horizon_units(self) -> int:
        h = self.label_horizon
        return int(h.value) if isinstance(h, pd.Timedelta) else int(h)

    def _folds(self, starts: np.ndarray) -> Iterator[Split]:
        """Purge and embargo on the `starts` axis (bar positions, or epoch ns when windows are in time)."""
        n = len(starts)
        if n < self.n_splits:
            raise ValueError(f"{self.n_splits} folds need at least {self.n_splits} samples, got {n}")
        ends = starts + self._horizon_units()
        positions = np.arange(n, dtype=np.int64)
        for test in np.array_split(positions, self.n_splits):
            a, b = int(test[0]), int(test[-1]) + 1
            test_lo, test_hi = starts[a], ends[a:b].max()
            keep = (ends < test_lo) | (starts > test_hi)  # closed windows that do not intersect the test's
            keep[a:b] = False
            first_after = int(np.searchsorted(starts, test_hi, side="right"))
            if isinstance(self.embargo, pd.Timedelta):
                keep &= ~((starts > test_hi) & (starts <= test_hi + self.embargo.value))
            else:
                keep[first_after : first_after + _embargo_bars(self.embargo, n)] = False
            yield positions[keep], test
