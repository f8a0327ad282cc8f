"""`LLMAgent`: a language model behind the one `Agent` interface.

A turn is: build the versioned prompt from the snapshot and the account, look the request up in the response
cache (or call the provider within the round's deadline), parse the answer into one decision per coin, and hand
the decisions to the engine, which enforces every rule itself. Whatever goes wrong (a timeout, a 429 storm, prose
instead of JSON, an unknown coin) ends as HOLD for the coins concerned, with the raw text and the reason kept.
The agent never trades on a guess.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arena_lib.agents.base import AccountView
from arena_lib.agents.llm.cache import CacheMissError, CacheMode, ResponseCache, cache_key
from arena_lib.agents.llm.clients import LLMCallError, LLMClient, LLMRequest, LLMResponse, make_client
from arena_lib.agents.llm.config import LLMAgentConfig, configuration_status, resolve_api_key, token_cost
from arena_lib.agents.llm.invalidation import describe_fields
from arena_lib.agents.llm.parsing import parse_decisions
from arena_lib.agents.llm.prompt import Prompt, PromptBuilder
from arena_lib.agents.llm.schema import decision_json_schema, to_engine_decision
from arena_lib.agents.turn import DecisionNote, ModelCall, Turn, TurnContext
from arena_lib.core.config import RiskLimits
from arena_lib.core.sync import run_sync
from arena_lib.core.types import Decision, hold

if TYPE_CHECKING:
    from arena_lib.data.snapshot import MarketSnapshot


class AgentNotConfiguredError(RuntimeError):
    """An LLM agent has no key or endpoint; the message names the variable to set."""


class LLMAgent:
    """An LLM contestant. `play_turn` is the arena's async path; `decide` runs one turn synchronously."""

    kind = "llm"

    def __init__(
        self,
        config: LLMAgentConfig,
        *,
        client: LLMClient | None = None,
        cache: ResponseCache | None = None,
        cache_mode: CacheMode = "use",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if cache_mode == "strict" and cache is None:
            # Strict means "replay recorded answers, never call": without a cache it would silently call the API.
            raise ValueError(f"{config.name}: strict cache mode replays recorded responses and needs a ResponseCache")
        self.config = config
        self.name = config.name
        self.cache = cache
        self.cache_mode: CacheMode = cache_mode if cache is not None else "off"
        self.builder = PromptBuilder(config.prompt_version, series_len=config.series_len)
        self._client = client
        self._env = env
        self._schemas: dict[tuple[tuple[str, ...], float], dict[str, Any]] = {}
        self._conditions = describe_fields()
        self._sync_round = 0
        if client is None and self.cache_mode != "strict":
            status = configuration_status(config, env)
            if not status.configured:
                raise AgentNotConfiguredError(f"{config.name}: {status.reason}")

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def provider(self) -> str:
        return self.config.provider

    def client(self) -> LLMClient:
        """The provider client, built on first use (a strict cached replay never needs one, nor a key)."""
        if self._client is None:
            status = configuration_status(self.config, self._env)
            if not status.configured:
                raise AgentNotConfiguredError(f"{self.name}: {status.reason}")
            client: LLMClient = make_client(self.config, resolve_api_key(self.config, self._env))
            self._client = client
        return self._client

    def _schema(self, symbols: tuple[str, ...], max_leverage: float) -> dict[str, Any]:
        key = (symbols, max_leverage)
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = decision_json_schema(symbols, max_leverage)
        return schema

    def request_params(self) -> dict[str, Any]:
        """Everything besides the prompts that determines a response (part of the cache key)."""
        c = self.config
        return {
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "structured_output": c.resolved_structured_output,
            "extra": c.extra_params,
        }

    def build_prompt(self, snapshot: MarketSnapshot, account: AccountView, context: TurnContext) -> Prompt:
        return self.builder.build(
            snapshot,
            account,
            symbols=snapshot.symbols,
            started_at_ns=context.started_at_ns,
            invocation=context.round_no + 1,
            exit_plans=context.exit_plans,
            stats=context.stats if self.config.adaptive else None,
            max_leverage=context.max_leverage,
            condition_fields=self._conditions,
            recent_exits=context.recent_exits,
        )

    async def play_turn(self, snapshot: MarketSnapshot, account: AccountView, context: TurnContext) -> Turn:
        t0 = time.perf_counter()
        symbols = tuple(snapshot.symbols)
        prompt = self.build_prompt(snapshot, account, context)
        c = self.config
        key = cache_key(c.provider, c.model, prompt.system, prompt.user, self.request_params())
        call = ModelCall(prompt.version, prompt.sha256, prompt.system, prompt.user, cache_key=key)
        payload = self.cache.get(key) if self.cache is not None and self.cache_mode in ("use", "strict") else None
        if payload is not None:
            call.cache_hit = True
        elif self.cache_mode == "strict":
            raise CacheMissError(
                f"{self.name}: no recorded response for round {context.round_no} ({snapshot.timestamp}); "
                "strict cache mode makes no API calls"
            )
        else:
            try:
                response = await self._call(prompt, symbols, context)
            except LLMCallError as exc:
                call.error = f"{exc.kind}: {exc}"
                call.attempts = exc.attempts
                call.latency_s = time.perf_counter() - t0
                return self._all_hold(symbols, call, f"model call failed ({call.error})", t0)
            payload = _payload(response, token_cost(c, response.input_tokens, response.output_tokens))
            if self.cache is not None and self.cache_mode != "off":
                self.cache.put(key, c.provider, c.model, payload)
        call.raw = str(payload["text"])
        call.input_tokens = int(payload["input_tokens"])
        call.output_tokens = int(payload["output_tokens"])
        call.cost_usd = float(payload["cost_usd"])
        call.latency_s = float(payload["latency_s"])  # the model's latency, also on a cache hit
        call.attempts = int(payload.get("attempts", 1))
        return self._turn_from_text(symbols, call, t0)

    async def _call(self, prompt: Prompt, symbols: tuple[str, ...], context: TurnContext) -> LLMResponse:
        c = self.config
        schema = None if c.resolved_structured_output == "none" else self._schema(symbols, context.max_leverage)
        request = LLMRequest(
            system=prompt.system,
            user=prompt.user,
            temperature=c.temperature,
            max_tokens=c.max_tokens,
            json_schema=schema,
            extra_params=c.extra_params,
        )
        deadline = (
            context.deadline if context.deadline is not None else time.monotonic() + c.timeout_s * (c.max_retries + 1)
        )
        return await self.client().complete(request, deadline)

    def _turn_from_text(self, symbols: tuple[str, ...], call: ModelCall, t0: float) -> Turn:
        parsed = parse_decisions(call.raw, symbols)
        call.parse_ok = parsed.ok
        call.problems = list(parsed.problems)
        decisions: list[Decision] = []
        notes: dict[str, DecisionNote] = {}
        for sym in symbols:
            d = parsed.decisions.get(sym)
            if d is None:
                why = "; ".join(parsed.problems) or "no decision given"
                decisions.append(hold(sym, f"invalid or missing output, holding: {why}"[:2000]))
                continue
            decisions.append(to_engine_decision(d, sym))
            notes[sym] = DecisionNote(d.confidence, d.risk_usd, d.invalidation_condition)
        error = "" if parsed.ok else "no valid decision in the response: " + "; ".join(parsed.problems)
        return Turn(decisions, notes, call, error=error[:2000], latency_s=time.perf_counter() - t0)

    def _all_hold(self, symbols: tuple[str, ...], call: ModelCall, why: str, t0: float) -> Turn:
        return Turn([hold(s, why) for s in symbols], {}, call, error=why, latency_s=time.perf_counter() - t0)

    async def aclose(self) -> None:
        """Close the provider client's connections on the running event loop (no-op when none was opened)."""
        close = getattr(self._client, "aclose", None)
        if close is not None:
            await close()

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        """One turn, synchronously (for `run_replay` and notebooks); the arena runner uses `play_turn`.

        The prompt and schema state the engine's default leverage limit; the RiskEngine enforces the real one.
        """
        context = TurnContext(
            round_no=self._sync_round, started_at_ns=snapshot.timestamp_ns, max_leverage=RiskLimits().max_leverage
        )
        self._sync_round += 1
        return run_sync(self.play_turn(snapshot, account, context)).decisions

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "kind": self.kind,
            "provider": c.provider,
            "model": c.model,
            "prompt_version": c.prompt_version,
            "training_cutoff": c.training_cutoff.isoformat() if c.training_cutoff else None,
        }


def _payload(response: LLMResponse, cost: float) -> dict[str, Any]:
    return {
        "text": response.text,
        "input_tokens": response.input_tokens,
        "output_tokens": response.output_tokens,
        "latency_s": response.latency_s,
        "model": response.model,
        "finish_reason": response.finish_reason,
        "attempts": response.attempts,
        "structured": response.structured,
        "cost_usd": cost,
    }
