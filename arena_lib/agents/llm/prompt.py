"""Versioned nof1-style prompts: the per-coin market context an LLM agent sees, and the templates that show it.

Why this module exists: an LLM agent's prompt is part of its spec. The response cache is keyed by the prompt text
and every run logs the prompt version and hash, so the same snapshot and account must always give byte-identical
text, and a template, once used, must never change (write a new version directory instead). Each version under
`prompts/<version>/` is therefore self-contained (no shared includes that could change an old version silently).

The layout follows nof1's Alpha Arena prompts: per coin the current price, EMA20, MACD, RSI7/RSI14, funding, the
intraday series (oldest to newest), a 4-hour context, then the account with each position's exit plan.

Point in time: `coin_context` reads the snapshot's bars only up to its last closed bar (`bar_count`), and its
settled funding; the 4-hour bars are aggregated from closed base bars and a 4-hour bucket appears only once all of
its bars have closed, exactly as `MarketSnapshot.resampled` builds them. The indicators run on fixed-length windows
that end at the current bar, so a prompt never depends on data after it, nor on how far the loaded history extends.

Speed: cached LLM rounds replay at hundreds of decisions per second, and the cache key is the prompt itself, so a
coin's context is built from small numpy windows with TA-Lib, never through pandas: about 0.2 ms per coin measured
here, a third of it in `MarketSnapshot.funding_rate`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np

from arena_lib.agents.llm.schema import Signal, coin_name
from arena_lib.agents.turn import AgentStats, ExitPlan
from arena_lib.data.resample import timeframe_origin_ns, timeframe_to_ns
from arena_lib.features import core

if TYPE_CHECKING:
    from arena_lib.agents.base import AccountView
    from arena_lib.data.snapshot import MarketSnapshot

__all__ = [
    "CONDITION_FIELDS",
    "HIGHER_TIMEFRAME",
    "AgentStats",
    "CoinContext",
    "ExitPlan",
    "Prompt",
    "PromptBuilder",
    "available_versions",
    "coin_context",
    "format_number",
    "min_history",
]

HIGHER_TIMEFRAME = "4h"  # the "longer-term context" timeframe of the nof1 layout
_EMA_FAST, _EMA_SLOW = 20, 50
_RSI_FAST, _RSI_SLOW = 7, 14
_MACD = (12, 26, 9)
_ATR_FAST, _ATR_SLOW = 3, 14
_VOLUME_AVG = 20

# The values an invalidation condition may name; `CoinContext.fields()` returns exactly these keys.
CONDITION_FIELDS: Mapping[str, str] = {
    "price": "latest close (current price)",
    "ema20": "20-period EMA of the closes",
    "ema50": "50-period EMA of the closes",
    "macd": "MACD line (EMA12 - EMA26)",
    "macd_signal": "MACD signal line (9-period EMA of the MACD line)",
    "rsi7": "7-period RSI (Wilder)",
    "rsi14": "14-period RSI (Wilder)",
    "atr14": "14-period ATR (Wilder)",
    "volume": "volume of the latest bar",
    "close_4h": "close of the latest closed 4h bar",
    "ema20_4h": "20-period EMA of the 4h closes",
    "ema50_4h": "50-period EMA of the 4h closes",
    "atr3_4h": "3-period ATR of the 4h bars",
    "atr14_4h": "14-period ATR of the 4h bars",
    "rsi14_4h": "14-period RSI of the 4h closes",
    "macd_4h": "MACD line of the 4h closes",
    "funding_rate": "latest settled funding rate",
}


def min_history(series_len: int = 10) -> int:
    """Closed base bars a coin needs before every intraday value and series of its context is defined."""
    _, slow, signal = _MACD
    return max(
        _EMA_SLOW,  # ema50
        slow + signal - 1,  # macd signal
        slow - 1 + series_len,  # macd series
        _EMA_FAST - 1 + series_len,  # ema20 series
        _RSI_SLOW + series_len,  # rsi14 series
        _ATR_SLOW + 1,  # atr14
    )


@dataclass(frozen=True, slots=True)
class CoinContext:
    """What the prompt shows about one coin at one snapshot; every series is ordered oldest -> newest.

    Values that cannot be computed yet (a 4h indicator with too few closed 4h bars) are NaN; the prompt shows
    them as "n/a". `open_interest` is None because the bundled data has none: the prompt says so rather than
    inventing a number.
    """

    symbol: str
    coin: str
    timeframe: str
    price: float
    ema20: float
    ema50: float
    macd: float
    macd_signal: float
    rsi7: float
    rsi14: float
    atr14: float
    volume: float
    closes: tuple[float, ...]
    ema20_series: tuple[float, ...]
    macd_series: tuple[float, ...]
    rsi7_series: tuple[float, ...]
    rsi14_series: tuple[float, ...]
    close_4h: float
    ema20_4h: float
    ema50_4h: float
    atr3_4h: float
    atr14_4h: float
    rsi14_4h: float
    macd_4h: float
    volume_4h: float
    volume_avg_4h: float
    macd_4h_series: tuple[float, ...]
    rsi14_4h_series: tuple[float, ...]
    bars_4h: int  # closed 4h bars the 4h indicators were computed on
    funding_rate: float | None
    open_interest: float | None = None

    def fields(self) -> dict[str, float]:
        """The values an invalidation condition may use (keys = `CONDITION_FIELDS`), NaN where unavailable."""
        return {
            "price": self.price,
            "ema20": self.ema20,
            "ema50": self.ema50,
            "macd": self.macd,
            "macd_signal": self.macd_signal,
            "rsi7": self.rsi7,
            "rsi14": self.rsi14,
            "atr14": self.atr14,
            "volume": self.volume,
            "close_4h": self.close_4h,
            "ema20_4h": self.ema20_4h,
            "ema50_4h": self.ema50_4h,
            "atr3_4h": self.atr3_4h,
            "atr14_4h": self.atr14_4h,
            "rsi14_4h": self.rsi14_4h,
            "macd_4h": self.macd_4h,
            "funding_rate": math.nan if self.funding_rate is None else self.funding_rate,
        }

    @property
    def complete_4h(self) -> bool:
        """True when every 4h value is defined (False early in a history, when the prompt shows n/a)."""
        values = (self.close_4h, self.ema20_4h, self.ema50_4h, self.atr3_4h, self.atr14_4h, self.rsi14_4h)
        return all(math.isfinite(v) for v in (*values, self.macd_4h, self.volume_avg_4h))


def _last(arr: np.ndarray) -> float:
    return float(arr[-1]) if len(arr) else math.nan


def _tail(arr: np.ndarray, n: int) -> tuple[float, ...]:
    """The last `n` values, oldest first, without the warm-up NaNs (which only ever lead)."""
    tail = arr[-n:]
    return tuple(tail[~np.isnan(tail)].tolist())


def _closed_buckets(
    times: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    start: int,
    end: int,
    target_ns: int,
    origin_ns: int,
    cutoff_ns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """High, low, close and volume of the higher-timeframe buckets of bars ``start:end`` that closed by the cut-off.

    The same aggregation as `arena_lib.data.resample.resample_ohlcv` (epoch-aligned buckets, gaps never filled),
    on array windows. A first bucket cut by the window start is dropped, so every bucket is aggregated from all of
    its bars, as it would be from the full history.
    """
    keys = (times[start:end] - origin_ns) // target_ns
    skip = 0
    if start > 0 and len(keys) and (times[start - 1] - origin_ns) // target_ns == keys[0]:
        skip = int(np.searchsorted(keys, keys[0], side="right"))
    keys = keys[skip:]
    first = start + skip
    if len(keys) == 0:
        empty = np.empty(0)
        return empty, empty, empty, empty
    starts = np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))
    stop = len(keys)
    if (keys[-1] + 1) * target_ns + origin_ns > cutoff_ns:  # the newest bucket is still forming: not known yet
        stop, starts = int(starts[-1]), starts[:-1]
    if len(starts) == 0:
        empty = np.empty(0)
        return empty, empty, empty, empty
    known = slice(first, first + stop)
    h, lo, c, v = high[known], low[known], close[known], volume[known]
    ends = np.append(starts[1:], stop)
    return np.maximum.reduceat(h, starts), np.minimum.reduceat(lo, starts), c[ends - 1], np.add.reduceat(v, starts)


def coin_context(
    snapshot: MarketSnapshot, symbol: str, series_len: int = 10, lookback: int = 200
) -> CoinContext | None:
    """The prompt context of `symbol` at `snapshot`, or None when it has no bar now or too little history.

    `lookback` is the number of bars of each timeframe (base and 4h) the indicators run on; with TA-Lib's
    SMA-seeded EMA and Wilder smoothing, the values depend on that window, which always ends at the current bar.
    """
    if series_len < 1:
        raise ValueError(f"series_len must be >= 1, got {series_len}")
    need = min_history(series_len)
    if lookback < need:
        raise ValueError(f"lookback must be >= {need} bars for series_len={series_len}, got {lookback}")
    market = snapshot.market
    base_ns = market.bar_ns
    target_ns = timeframe_to_ns(HIGHER_TIMEFRAME)
    if target_ns % base_ns:
        raise ValueError(
            f"the {HIGHER_TIMEFRAME} context needs a base timeframe that divides it; got {market.timeframe}"
        )
    end = snapshot.bar_count(symbol)  # raises KeyError for an unknown symbol
    if end < need or not snapshot.has_bar(symbol):
        return None
    s = market.series[symbol]
    start = max(0, end - lookback)
    high, low, close = s.high[start:end], s.low[start:end], s.close[start:end]
    ema20, ema50 = core.ema(close, _EMA_FAST), core.ema(close, _EMA_SLOW)
    macd, macd_signal, _ = core.macd(close, *_MACD)
    rsi7, rsi14 = core.rsi(close, _RSI_FAST), core.rsi(close, _RSI_SLOW)
    atr14 = core.atr(high, low, close, _ATR_SLOW)

    start4 = max(0, end - lookback * (target_ns // base_ns))
    h4, l4, c4, v4 = _closed_buckets(
        s.times, s.high, s.low, s.close, s.volume, start4, end, target_ns, timeframe_origin_ns(HIGHER_TIMEFRAME),
        snapshot.timestamp_ns,
    )  # fmt: skip
    if len(c4):
        ema20_4h, ema50_4h = core.ema(c4, _EMA_FAST), core.ema(c4, _EMA_SLOW)
        macd_4h = core.macd(c4, *_MACD)[0]
        rsi14_4h = core.rsi(c4, _RSI_SLOW)
        atr3_4h, atr14_4h = core.atr(h4, l4, c4, _ATR_FAST), core.atr(h4, l4, c4, _ATR_SLOW)
        volume_avg_4h = core.sma(v4, _VOLUME_AVG)
    else:
        ema20_4h = ema50_4h = macd_4h = rsi14_4h = atr3_4h = atr14_4h = volume_avg_4h = c4
    funding = snapshot.funding_rate(symbol)
    return CoinContext(
        symbol=symbol,
        coin=coin_name(symbol),
        timeframe=market.timeframe,
        price=float(close[-1]),
        ema20=float(ema20[-1]),
        ema50=float(ema50[-1]),
        macd=float(macd[-1]),
        macd_signal=float(macd_signal[-1]),
        rsi7=float(rsi7[-1]),
        rsi14=float(rsi14[-1]),
        atr14=float(atr14[-1]),
        volume=float(s.volume[end - 1]),
        closes=tuple(close[-series_len:].tolist()),
        ema20_series=_tail(ema20, series_len),
        macd_series=_tail(macd, series_len),
        rsi7_series=_tail(rsi7, series_len),
        rsi14_series=_tail(rsi14, series_len),
        close_4h=_last(c4),
        ema20_4h=_last(ema20_4h),
        ema50_4h=_last(ema50_4h),
        atr3_4h=_last(atr3_4h),
        atr14_4h=_last(atr14_4h),
        rsi14_4h=_last(rsi14_4h),
        macd_4h=_last(macd_4h),
        volume_4h=_last(v4),
        volume_avg_4h=_last(volume_avg_4h),
        macd_4h_series=_tail(macd_4h, series_len),
        rsi14_4h_series=_tail(rsi14_4h, series_len),
        bars_4h=len(c4),
        funding_rate=None if math.isnan(funding) else funding,
    )


# -- formatting: compact and deterministic (the response cache is keyed by the prompt text) ---------------------


def format_number(x: float | None, sig: int = 6) -> str:
    """`x` with `sig` significant digits in plain notation, trailing zeros dropped; "n/a" for None/NaN/inf.

    61501.11 -> "61501.1" (sig 6), 0.000533 -> "0.000533", 1234567.8 -> "1234568", -0.0 -> "0".
    """
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    decimals = max(0, sig - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _money(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def _pct(x: float | None, decimals: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    text = f"{x:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _series(values: Iterable[float], sig: int = 6) -> str:
    return "[" + ", ".join(format_number(v, sig) for v in values) + "]"


def _isnan(x: float | None) -> bool:
    return x is None or not math.isfinite(x)


# -- templates ---------------------------------------------------------------------------------------------------

_PROMPTS = "prompts"


def _prompt_root() -> Any:
    return resources.files("arena_lib.agents.llm").joinpath(_PROMPTS)


def available_versions() -> tuple[str, ...]:
    """Prompt versions shipped with the package (directories holding `system.j2` and `user.j2`), sorted."""
    root = _prompt_root()
    return tuple(
        sorted(
            d.name
            for d in root.iterdir()
            if d.is_dir() and d.joinpath("system.j2").is_file() and d.joinpath("user.j2").is_file()
        )
    )


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text for a model, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(num=format_number, money=_money, pct=_pct, series=_series)
    env.tests["nan"] = _isnan
    return env


@cache
def _templates(version: str) -> tuple[jinja2.Template, jinja2.Template]:
    versions = available_versions()
    if version not in versions:
        raise ValueError(f"unknown prompt version {version!r}; available versions: {', '.join(versions)}")
    folder = _prompt_root().joinpath(version)
    env = _environment()
    return tuple(  # type: ignore[return-value]
        env.from_string(folder.joinpath(name).read_text(encoding="utf-8")) for name in ("system.j2", "user.j2")
    )


# -- the builder ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
    """A rendered prompt; `sha256` (of version, system and user text) identifies it in logs and caches."""

    version: str
    system: str
    user: str
    sha256: str

    @classmethod
    def create(cls, version: str, system: str, user: str) -> Prompt:
        digest = hashlib.sha256("\x00".join((version, system, user)).encode("utf-8")).hexdigest()
        return cls(version, system, user, digest)

    def messages(self) -> list[dict[str, str]]:
        """The chat messages (system, then user) as the OpenAI-style APIs take them."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True, slots=True)
class _PositionView:
    """One open position as the account section shows it."""

    coin: str
    side: str
    quantity: float
    entry_price: float
    current_price: float
    unrealized_pnl: float
    leverage: float
    liquidation_price: float
    notional: float
    plan: ExitPlan


class PromptBuilder:
    """Renders the system and user prompts of one template version from a snapshot and an account.

    The same inputs always give the same text and hash. Coins without a bar now or with too little history are
    left out of the market data with a note saying why (and the model is told not to trade them).
    """

    def __init__(self, version: str = "v1", series_len: int = 10, lookback: int = 200) -> None:
        if series_len < 1:
            raise ValueError(f"series_len must be >= 1, got {series_len}")
        if lookback < min_history(series_len):
            raise ValueError(f"lookback must be >= {min_history(series_len)} bars, got {lookback}")
        self._system, self._user = _templates(version)  # unknown version -> ValueError
        self.version = version
        self.series_len = series_len
        self.lookback = lookback

    def build(
        self,
        snapshot: MarketSnapshot,
        account: AccountView,
        *,
        symbols: Sequence[str],
        started_at_ns: int,
        invocation: int,
        exit_plans: Mapping[str, ExitPlan] | None = None,
        stats: AgentStats | None = None,
        max_leverage: float,
        condition_fields: Mapping[str, str] | None = None,
    ) -> Prompt:
        """The prompt for one round; `started_at_ns` is when trading started (market time), `invocation` the round."""
        symbols = tuple(symbols)
        if not symbols:
            raise ValueError("a prompt needs at least one symbol")
        unknown = [s for s in symbols if s not in snapshot.symbols]
        if unknown:
            raise ValueError(f"symbols {unknown} are not in this snapshot, which has {list(snapshot.symbols)}")
        if len({coin_name(s) for s in symbols}) != len(symbols):
            raise ValueError(f"symbols {list(symbols)} share a coin name; the model could not tell them apart")
        now_ns = snapshot.timestamp_ns
        if started_at_ns > now_ns:
            raise ValueError(f"started_at_ns ({started_at_ns}) is after the snapshot time ({now_ns})")
        if invocation < 0:
            raise ValueError(f"invocation must be >= 0, got {invocation}")
        if not (math.isfinite(max_leverage) and max_leverage >= 1):
            raise ValueError(f"max_leverage must be a finite number >= 1, got {max_leverage!r}")

        coins: list[CoinContext] = []
        notes: list[str] = []
        for sym in symbols:
            ctx = coin_context(snapshot, sym, self.series_len, self.lookback)
            if ctx is None:
                notes.append(self._omission_note(snapshot, sym))
            else:
                coins.append(ctx)
        fields = CONDITION_FIELDS if condition_fields is None else condition_fields
        system = self._system.render(
            coins=[coin_name(s) for s in symbols],
            timeframe=snapshot.market.timeframe,
            max_leverage=max_leverage,
            condition_fields=fields,
            signals=[s.value for s in Signal],
        ).strip()
        user = self._user.render(
            minutes=(now_ns - started_at_ns) // 60_000_000_000,
            now=datetime.fromtimestamp(now_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            invocation=invocation,
            timeframe=snapshot.market.timeframe,
            series_len=self.series_len,
            coins=coins,
            notes=notes,
            account=account,
            return_pct=(account.equity / account.initial_cash - 1.0) * 100.0 if account.initial_cash else math.nan,
            positions=self._positions(snapshot, account, symbols, exit_plans or {}),
            stats=stats,
        ).strip()
        return Prompt.create(self.version, system, user)

    def _omission_note(self, snapshot: MarketSnapshot, symbol: str) -> str:
        coin, tf = coin_name(symbol), snapshot.market.timeframe
        have, need = snapshot.bar_count(symbol), min_history(self.series_len)
        if have < need:
            return f"{coin}: no data yet ({have} closed {tf} bars, {need} needed for the indicators); do not trade it."
        return f"{coin}: no {tf} bar closed at this time (data gap); do not open a position in it this round."

    @staticmethod
    def _positions(
        snapshot: MarketSnapshot, account: AccountView, symbols: Sequence[str], plans: Mapping[str, ExitPlan]
    ) -> list[_PositionView]:
        """Open positions in a fixed order (the prompt's symbols first, then any others by name)."""
        order = [s for s in symbols if s in account.positions]
        order += sorted(s for s in account.positions if s not in symbols)
        out: list[_PositionView] = []
        for sym in order:
            pos = account.positions[sym]
            if sym not in snapshot.symbols:
                raise ValueError(f"the account holds {sym}, which this snapshot does not show")
            price = snapshot.close(sym)
            plan = plans.get(sym) or ExitPlan(pos.take_profit, pos.stop_loss, "")
            out.append(
                _PositionView(
                    coin=coin_name(sym),
                    side="long" if pos.quantity > 0 else "short",
                    quantity=pos.quantity,
                    entry_price=pos.entry_price,
                    current_price=price,
                    unrealized_pnl=pos.unrealized_pnl(price),
                    leverage=pos.leverage,
                    liquidation_price=pos.liquidation_price,
                    notional=abs(pos.quantity) * price,
                    plan=plan,
                )
            )
        return out
