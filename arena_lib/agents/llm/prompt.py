"""Versioned nof1-style prompts: the templates that render the coin contexts and the account for a model.

Why this module exists: an LLM agent's prompt is part of its spec. The response cache is keyed by the prompt text
and every run logs the prompt version and hash, so the same snapshot and account must always give byte-identical
text, and a template, once used, must never change (write a new version directory instead). Each version under
`prompts/<version>/` is therefore self-contained (no shared includes that could change an old version silently).

The layout follows nof1's Alpha Arena prompts: per coin the current price, EMA20, MACD, RSI7/RSI14, funding, the
intraday series (oldest to newest), a 4-hour context, then the account with each position's exit plan. The numbers
come from `arena_lib.agents.llm.context` (point in time, computed once); this module only formats and renders them.
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

from arena_lib.agents.llm.context import (
    CONDITION_FIELDS,
    CoinContext,
    coin_context,
    min_history,
)
from arena_lib.agents.llm.schema import Signal, coin_name
from arena_lib.agents.turn import AgentStats, ClosedPosition, ExitPlan

if TYPE_CHECKING:
    from arena_lib.agents.base import AccountView
    from arena_lib.data.snapshot import MarketSnapshot

__all__ = [
    "AgentStats",
    "ExitPlan",
    "Prompt",
    "PromptBuilder",
    "available_versions",
    "format_number",
]


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


@dataclass(frozen=True, slots=True)
class _ClosedView:
    """A position that closed since the last turn, as the account section shows it."""

    coin: str
    exit: ClosedPosition


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
        recent_exits: Sequence[ClosedPosition] = (),
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
            timeframe=snapshot.timeframe,
            max_leverage=max_leverage,
            condition_fields=fields,
            signals=[s.value for s in Signal],
        ).strip()
        user = self._user.render(
            minutes=(now_ns - started_at_ns) // 60_000_000_000,
            now=datetime.fromtimestamp(now_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            invocation=invocation,
            timeframe=snapshot.timeframe,
            series_len=self.series_len,
            coins=coins,
            notes=notes,
            account=account,
            return_pct=(account.equity / account.initial_cash - 1.0) * 100.0 if account.initial_cash else math.nan,
            positions=self._positions(snapshot, account, symbols, exit_plans or {}),
            stats=stats,
            recent_exits=[_ClosedView(coin_name(x.symbol), x) for x in recent_exits],
        ).strip()
        return Prompt.create(self.version, system, user)

    def _omission_note(self, snapshot: MarketSnapshot, symbol: str) -> str:
        coin, tf = coin_name(symbol), snapshot.timeframe
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
