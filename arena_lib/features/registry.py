"""The feature registry: one named, documented, point-in-time spec per feature.

Why this module exists: a model, a notebook and an agent must all mean the same thing by ``rsi_14`` or
``vol_gk_24``, and every feature must say how much history it needs and which context (BTC bars, funding) it
reads. A spec records that once; ``arena_lib.features.pipeline`` computes any subset of them, and the look-ahead
tests iterate over every registered name, so a feature cannot be added without being tested for look-ahead.

A feature function takes a ``FeatureInput`` (one symbol's OHLCV frame plus optional context, with a per-call cache
so that shared intermediates such as log returns or the 4h bars are computed once) and returns one float64 value
per input bar. The value at bar ``t`` may use bars ``<= t`` only: it is what is known at that bar's close.

Parameterized families register one name per parameter (``ret_1``, ``ret_4``, ``rsi_14`` ...), so every column of
a feature matrix has exactly one spec.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
FeatureFunc = Callable[["FeatureInput"], FloatArray]
F = TypeVar("F", bound=FeatureFunc)

CONTEXTS: frozenset[str] = frozenset({"btc", "funding"})
"""The context a feature may need besides its own bars: BTC's bars (cross-asset) and the symbol's funding."""

TIMEFRAMES: tuple[str, ...] = ("1h", "4h", "1d")

# The modules whose import registers features, in the order their columns appear in a feature matrix.
FEATURE_MODULES: tuple[str, ...] = (
    "arena_lib.features.returns",
    "arena_lib.features.volatility",
    "arena_lib.features.technical",
    "arena_lib.features.volume",
    "arena_lib.features.multitimeframe",
    "arena_lib.features.cross_asset",
    "arena_lib.features.funding",
    "arena_lib.features.complexity",
    "arena_lib.features.regime",
    "arena_lib.features.calendar",
)


@dataclass(frozen=True)
class FeatureSpec:
    """What one registered feature is, how much history it needs and what it reads.

    ``lookback`` counts input bars (1h by default) before the current one: the value at bar ``t`` is the same for
    any history that starts at or before ``t - lookback`` (so ``lookback + 1`` bars suffice, and ``ret_24`` has
    lookback 24). Windowed features declare exactly that; ``recursive`` ones (EMA-type, with geometrically fading
    memory) declare a warm-up after which the start's residual influence is negligible (``ema_warmup``,
    ``wilder_warmup``). The recursive test in ``tests/features`` holds every feature to its declaration.
    ``timeframe`` is the bar size the feature is computed on (``"4h"``/``"1d"`` ones are resampled from closed bars
    and aligned back to the input bars). ``needs`` names the context beyond the symbol's own bars.
    """

    name: str
    func: FeatureFunc = field(repr=False, compare=False)
    lookback: int
    timeframe: str
    group: str
    needs: frozenset[str]
    description: str
    recursive: bool = False


def ema_warmup(span: int) -> int:
    """Declared lookback of an EMA-type feature with ``alpha = 2 / (span + 1)``: ``5 * span`` bars.

    After ``5 * span`` bars the start's weight is ``(1 - alpha) ** (5 * span) ~ exp(-10 * span / (span + 1))``,
    below 1.5e-4 of the seed's error for ``span >= 9``, and after twice that (what the recursive test uses) below
    2e-8.
    """
    return 5 * span


def wilder_warmup(n: int) -> int:
    """Declared lookback of a Wilder-smoothed feature (``alpha = 1 / n``: RSI, ATR, ADX): ``10 * n`` bars.

    ``(1 - 1/n) ** (10 * n) < e**-10``: the same residual as ``ema_warmup``.
    """
    return 10 * n


class FeatureInput:
    """One symbol's bars plus optional context, with a cache shared by the features of one computation.

    The OHLCV columns are exposed as contiguous float64 arrays (what TA-Lib and numba want). ``cached(key, fn)``
    returns ``fn()`` computed once per input, so twenty features built on log returns compute them once. The
    cache lives and dies with this object: features stay pure functions of their input.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        btc: pd.DataFrame | None = None,
        funding: pd.Series | None = None,
        timeframe: str = "1h",
    ) -> None:
        self.frame = frame
        self.btc = btc
        self.funding = funding
        self.timeframe = timeframe
        self.index: pd.DatetimeIndex = pd.DatetimeIndex(frame.index)
        self.open = _column(frame, "open")
        self.high = _column(frame, "high")
        self.low = _column(frame, "low")
        self.close = _column(frame, "close")
        self.volume = _column(frame, "volume")
        self._cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.close)

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, computed at most once per input under ``key``."""
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]


def _column(frame: pd.DataFrame, name: str) -> FloatArray:
    return np.ascontiguousarray(frame[name].to_numpy(dtype=np.float64))


def _module_of(spec: FeatureSpec) -> str:
    """The module that defines a spec's function (looking through ``functools.partial``)."""
    return str(getattr(getattr(spec.func, "func", spec.func), "__module__", ""))


class _Registry(Mapping[str, FeatureSpec]):
    """Read-only view of the registered specs that imports the feature modules on first use.

    Lazy, so that importing the registry (or ``arena_lib``) costs nothing, and so the modules can import
    ``register`` from here without an import cycle.
    """

    def __init__(self) -> None:
        self._specs: dict[str, FeatureSpec] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: the modules' own lookups of specs must not re-enter
            try:
                for module in FEATURE_MODULES:
                    importlib.import_module(module)
            except BaseException:
                self._loaded = False  # a failed import (e.g. TA-Lib missing) must not leave a silently partial set
                raise
            # Column order is module order, then registration order, however the modules happened to be imported.
            rank = {m: i for i, m in enumerate(FEATURE_MODULES)}
            ordered = sorted(
                enumerate(self._specs.values()), key=lambda p: (rank.get(_module_of(p[1]), len(rank)), p[0])
            )
            self._specs = {spec.name: spec for _, spec in ordered}

    def peek(self, name: str) -> FeatureSpec:
        """A spec already registered, without importing the other feature modules (for features built on others)."""
        return self._specs[name]

    def add(self, spec: FeatureSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"feature {spec.name!r} is registered twice")
        self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> FeatureSpec:
        self._load()
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._specs)

    def __len__(self) -> int:
        self._load()
        return len(self._specs)


FEATURES: Mapping[str, FeatureSpec] = _Registry()
"""Every registered feature by name, in registration (= column) order."""


def register(
    name: str,
    *,
    lookback: int,
    group: str,
    timeframe: str = "1h",
    needs: Iterable[str] = (),
    description: str = "",
    recursive: bool = False,
) -> Callable[[F], F]:
    """Decorator that registers ``func`` as feature ``name``; the description defaults to its docstring's first line.

    For a parameterized family call it once per parameter: ``register(f"ret_{n}", ...)(partial(_ret, n=n))``.
    """
    needed = frozenset(needs)
    unknown = needed - CONTEXTS
    if unknown:
        raise ValueError(f"feature {name!r} needs unknown context {sorted(unknown)}; known: {sorted(CONTEXTS)}")
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"feature {name!r} has timeframe {timeframe!r}; expected one of {TIMEFRAMES}")
    if lookback < 0:
        raise ValueError(f"feature {name!r} has a negative lookback ({lookback})")

    def decorate(func: F) -> F:
        doc = (func.__doc__ or "").strip() if inspect.isfunction(func) else ""  # a partial's doc is partial's
        text = description or (doc.splitlines()[0] if doc else "")
        if not text:
            raise ValueError(f"feature {name!r} needs a description (or a docstring)")
        registry = FEATURES
        assert isinstance(registry, _Registry)
        registry.add(FeatureSpec(name, func, int(lookback), timeframe, group, needed, text, recursive))
        return func

    return decorate


def registered(name: str) -> FeatureSpec:
    """The spec of an already registered feature, without triggering the import of every feature module.

    For modules that build features on others (multi-timeframe versions of native features), so the column order
    does not depend on import order.
    """
    registry = FEATURES
    assert isinstance(registry, _Registry)
    return registry.peek(name)


def list_features(group: str | None = None) -> list[str]:
    """Registered feature names (all, or one group's), in column order; an unknown group raises with the groups."""
    if group is None:
        return list(FEATURES)
    names = [n for n, spec in FEATURES.items() if spec.group == group]
    if not names:
        raise KeyError(f"no feature group {group!r}; groups: {', '.join(groups())}")
    return names


def groups() -> list[str]:
    """Feature groups in column order."""
    return list(dict.fromkeys(spec.group for spec in FEATURES.values()))


def feature_table() -> pd.DataFrame:
    """One row per feature: name, group, lookback, timeframe, needs, recursive, description (for docs and notebooks)."""
    rows = [
        {
            "name": s.name,
            "group": s.group,
            "lookback": s.lookback,
            "timeframe": s.timeframe,
            "needs": ",".join(sorted(s.needs)),
            "recursive": s.recursive,
            "description": s.description,
        }
        for s in FEATURES.values()
    ]
    return pd.DataFrame(rows, columns=["name", "group", "lookback", "timeframe", "needs", "recursive", "description"])


def resolve(names: Iterable[str] | None) -> list[FeatureSpec]:
    """Specs for ``names`` (all when None) in registry order; unknown names raise ``KeyError`` with close matches."""
    if names is None:
        return list(FEATURES.values())
    if isinstance(names, str):
        names = [names]
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in FEATURES]
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, list(FEATURES), n=3, cutoff=0.6)
            hints.append(f"{n!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise KeyError(
            f"unknown feature{'s' if len(unknown) > 1 else ''}: {'; '.join(hints)}. "
            "See arena_lib.features.registry.list_features() or feature_table()."
        )
    chosen = set(wanted)
    return [spec for name, spec in FEATURES.items() if name in chosen]
