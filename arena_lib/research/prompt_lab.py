"""Prompt experiments: compare prompt versions of one LLM on identical snapshots, through the response cache.

Why: a prompt is part of an LLM agent's spec, and a change of wording is a change of strategy. A fair A/B test
shows every version the same point-in-time snapshots and the same (flat) account, records every answer in the
response cache, and scores what each version would have done against what the market did next. Because answers
are cached under the exact prompt text, a comparison re-runs for free, and a recorded comparison replays in
strict mode with no model, no key and no network at all (`load_recording`).

Scoring is deliberately simple and stated: for each coin an entry counts as right when the coin's simple return
over the next ``horizon_bars`` bars has the entry's sign; holds and closes are not scored. It measures direction,
not a backtest (fees, sizing and exits are the arena's business).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from arena_lib.agents.base import AccountView
from arena_lib.agents.llm.agent import LLMAgent
from arena_lib.agents.llm.cache import CacheMode, ResponseCache
from arena_lib.agents.llm.clients import LLMClient
from arena_lib.agents.llm.config import LLMAgentConfig
from arena_lib.agents.turn import Turn, TurnContext
from arena_lib.core.config import RiskLimits
from arena_lib.core.sync import run_sync
from arena_lib.core.types import Action
from arena_lib.data.market import MarketData
from arena_lib.data.resample import to_utc_timestamp
from arena_lib.data.snapshot import MarketSnapshot

__all__ = ["PromptLabResult", "load_recording", "prompt_lab_market", "run_prompt_lab", "snapshot_rows"]

_ENTRY_SIGN = {Action.ENTER_LONG: 1, Action.ENTER_SHORT: -1}


@dataclass(frozen=True)
class PromptLabResult:
    """Per-call and per-decision records of a prompt comparison.

    ``calls``: one row per (version, snapshot) with the prompt hash, tokens, cost, latency, cache hit and whether
    the answer parsed. ``decisions``: one row per (version, snapshot, symbol) with the action, leverage, confidence,
    the coin's forward return and whether an entry's direction was right (NaN for holds and closes).
    """

    calls: pd.DataFrame
    decisions: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """One row per prompt version: valid-output rate, tokens, cost, action mix and directional hit rate."""
        calls = self.calls.groupby("version")
        out = pd.DataFrame(
            {
                "calls": calls.size(),
                "valid_output_rate": calls["parse_ok"].mean(),
                "mean_input_tokens": calls["input_tokens"].mean(),
                "mean_output_tokens": calls["output_tokens"].mean(),
                "cost_usd": calls["cost_usd"].sum(),
                "cache_hit_rate": calls["cache_hit"].mean(),
            }
        )
        decisions = self.decisions.groupby("version")
        mix = pd.crosstab(self.decisions["version"], self.decisions["action"], normalize="index")
        out = out.join(mix.add_prefix("share_"))
        out["entries"] = decisions["correct"].count()
        out["hit_rate"] = decisions["correct"].mean()
        return out

    def agreement(self) -> pd.DataFrame:
        """Share of (snapshot, coin) pairs on which two versions chose the same action, as a version x version table."""
        actions = self.decisions.pivot_table(
            index=["timestamp", "symbol"], columns="version", values="action", aggfunc="first"
        )
        versions = list(actions.columns)
        table = pd.DataFrame(index=versions, columns=versions, dtype=float)
        for a in versions:
            for b in versions:
                table.loc[a, b] = float((actions[a] == actions[b]).mean())
        return table


def snapshot_rows(market: MarketData, start: str | pd.Timestamp, n_snapshots: int, every_bars: int) -> list[int]:
    """Rows of `market` for `n_snapshots` snapshots `every_bars` apart, from the first bar at or after `start`.

    Deterministic, so a recorded comparison and a later replay of it ask about exactly the same snapshots.
    """
    if n_snapshots < 1 or every_bars < 1:
        raise ValueError(f"n_snapshots and every_bars must be >= 1, got {n_snapshots} and {every_bars}")
    first = int(market.index().searchsorted(to_utc_timestamp(start, "start")))
    rows = [first + k * every_bars for k in range(n_snapshots)]
    if rows[-1] >= market.n_bars:
        raise ValueError(
            f"{n_snapshots} snapshots every {every_bars} bars from {start} need {rows[-1] + 1 - first} bars; "
            f"the market has {market.n_bars - first} from there (load a longer window)"
        )
    return rows


def prompt_lab_market(
    symbols: Sequence[str], start: str, n_snapshots: int, every_bars: int, horizon_bars: int, timeframe: str = "1h"
) -> tuple[MarketData, list[int]]:
    """The bundled sample around a comparison: the arena's warm-up before `start`, and `horizon_bars` after the last
    snapshot so that every entry can be scored. Returns the market and the snapshot rows."""
    from arena_lib.arena.session import WARMUP_BARS
    from arena_lib.data.history import load_market
    from arena_lib.data.resample import timeframe_to_ns

    bar = pd.Timedelta(timeframe_to_ns(timeframe), "ns")
    first = to_utc_timestamp(start, "start")
    end = first + bar * ((n_snapshots - 1) * every_bars + horizon_bars)
    market = load_market(symbols, timeframe, (first - bar * WARMUP_BARS).isoformat(), end.isoformat())
    return market, snapshot_rows(market, first, n_snapshots, every_bars)


def load_recording(path: str | Path, cache: ResponseCache) -> int:
    """Import a recorded comparison (an `arena cache export` file) into `cache`; returns the entries added."""
    return cache.import_file(path)


def _forward_returns(market: MarketData, row: int, horizon_bars: int) -> np.ndarray:
    end = min(row + horizon_bars, market.n_bars - 1)
    if end == row:
        return np.full(len(market.symbols), np.nan)
    return market.close[end] / market.close[row] - 1.0


def run_prompt_lab(
    config: LLMAgentConfig,
    versions: Sequence[str],
    market: MarketData,
    rows: Sequence[int],
    *,
    cache: ResponseCache,
    cache_mode: CacheMode = "use",
    horizon_bars: int = 4,
    initial_cash: float = 10_000.0,
    client: LLMClient | None = None,
) -> PromptLabResult:
    """Ask `config`'s model, once per prompt version, about the same snapshots (`rows` of `market`).

    Every version sees a flat account with `initial_cash`, and the same run start (the first snapshot), so the
    only difference between two versions' prompts is the template. `cache_mode="strict"` replays recorded answers
    and raises `CacheMissError` on any snapshot that was not recorded, rather than calling the model.
    """
    if not versions:
        raise ValueError("run_prompt_lab needs at least one prompt version")
    if not rows:
        raise ValueError("run_prompt_lab needs at least one snapshot row")
    account = AccountView(cash=initial_cash, equity=initial_cash, initial_cash=initial_cash, positions={})
    agents = [
        LLMAgent(config.model_copy(update={"prompt_version": v}), client=client, cache=cache, cache_mode=cache_mode)
        for v in versions
    ]
    # One event loop for every turn: the SDK clients keep connections bound to the loop that opened them.
    turns = run_sync(_play(agents, market, rows, account))
    calls: list[dict[str, object]] = []
    decisions: list[dict[str, object]] = []
    for version, (row, snapshot, turn) in zip([v for v in versions for _ in rows], turns, strict=True):
        call = turn.call
        assert call is not None  # an LLMAgent's turn always carries its call
        calls.append(
            {
                "version": version,
                "timestamp": snapshot.timestamp,
                "prompt_sha": call.prompt_sha,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost_usd": call.cost_usd,
                "latency_s": call.latency_s,
                "cache_hit": call.cache_hit,
                "parse_ok": call.parse_ok,
                "error": turn.error or call.error,
                "raw": call.raw,
            }
        )
        forward = _forward_returns(market, row, horizon_bars)
        for decision in turn.decisions:
            fwd = float(forward[market.symbols.index(decision.symbol)])
            sign = _ENTRY_SIGN.get(decision.action)
            note = turn.notes.get(decision.symbol)
            decisions.append(
                {
                    "version": version,
                    "timestamp": snapshot.timestamp,
                    "symbol": decision.symbol,
                    "action": str(decision.action),
                    "leverage": decision.leverage,
                    "confidence": np.nan if note is None or note.confidence is None else note.confidence,
                    "forward_return": fwd,
                    "correct": np.nan if sign is None or np.isnan(fwd) or fwd == 0 else float(sign * fwd > 0),
                    "reason": decision.reason,
                }
            )
    return PromptLabResult(pd.DataFrame(calls), pd.DataFrame(decisions))


async def _play(
    agents: Sequence[LLMAgent], market: MarketData, rows: Sequence[int], account: AccountView
) -> list[tuple[int, MarketSnapshot, Turn]]:
    """Every agent's turn on every snapshot, one after another (a local model serves one request at a time)."""
    started = MarketSnapshot(market, rows[0]).timestamp_ns
    out: list[tuple[int, MarketSnapshot, Turn]] = []
    for agent in agents:
        for k, row in enumerate(rows):
            snapshot = MarketSnapshot(market, row)
            context = TurnContext(round_no=k, started_at_ns=started, max_leverage=RiskLimits().max_leverage)
            out.append((row, snapshot, await agent.play_turn(snapshot, account, context)))
        await agent.aclose()
    return out
