"""The decision an LLM agent states per coin each round, its JSON Schema, and its translation to an engine `Decision`.

LLM agents answer in the nof1 "Alpha Arena" style: one object per coin with a signal, a size in base units, leverage,
exit levels, an invalidation condition and a justification. The model only proposes; the engine's `RiskEngine`
enforces the rules (leverage caps, wrong-side stops, non-positive sizes), so this module validates meaning (types,
finiteness, obvious ranges) and nothing that the risk engine already decides with the account in view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arena_lib.core.types import Action, Decision, SizeUnit

# Quote currencies (and contract suffixes) a model may glue to a coin name: "BTCUSDT", "BTC-USD", "BTC-PERP".
_KNOWN_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "EUR", "PERP")
_SEPARATORS = ("/", "-", ":", "_", " ")


class Signal(StrEnum):
    """What the model wants to do with one coin this round (the nof1 vocabulary)."""

    BUY_TO_ENTER = "buy_to_enter"
    SELL_TO_ENTER = "sell_to_enter"
    HOLD = "hold"
    CLOSE_POSITION = "close_position"


class CoinDecision(BaseModel):
    """One coin's decision exactly as the model stated it, after validation of its meaning.

    Lenient parsing of the model's text (strings for numbers, synonyms, fences) happens in `parsing.py`, which
    records every repair; this model is strict: numbers are finite, sizes non-negative, leverage positive,
    confidence within 0..1, and unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    coin: str = Field(min_length=1, description="The coin as the model wrote it, e.g. 'BTC' or 'BTC/USDT'.")
    signal: Signal
    quantity: float = Field(default=0.0, ge=0, description="Position size in base units (coins).")
    leverage: float = Field(default=1.0, gt=0)
    profit_target: float | None = Field(default=None, description="Absolute take-profit price.")
    stop_loss: float | None = Field(default=None, description="Absolute stop-loss price.")
    invalidation_condition: str = ""
    confidence: float | None = Field(default=None, ge=0, le=1)
    risk_usd: float | None = None
    justification: str = ""

    @field_validator("quantity", "leverage", "profit_target", "stop_loss", "confidence", "risk_usd", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # pydantic's lax mode would read True as 1.0; a boolean size or price is a mistake, not a number.
        if isinstance(value, bool):
            raise ValueError(f"a boolean ({value}) is not a number")
        return value


def coin_name(symbol: str) -> str:
    """The short coin name the model sees for a ccxt symbol: 'BTC/USDT' -> 'BTC', 'ETH/USDT:USDT' -> 'ETH'."""
    base = symbol.strip().split("/", 1)[0].split(":", 1)[0].strip()
    if not base:
        raise ValueError(f"cannot take a coin name from symbol {symbol!r}")
    return base.upper()


def _split_base_quote(text: str) -> tuple[str, str]:
    for sep in _SEPARATORS:
        if sep in text:
            base, _, rest = text.partition(sep)
            return base.strip(), rest.strip()
    return text, ""


def symbol_for_coin(coin: str, symbols: Sequence[str]) -> str | None:
    """The engine symbol a model's coin refers to, or None when it names none (or more than one) of `symbols`.

    Matching is case-insensitive and by base asset: 'btc', 'BTC', 'BTC/USDT', 'BTC-USD' and 'BTCUSDT' all name
    'BTC/USDT'. When two symbols share a base (BTC/USDT and BTC/USDC) only a full symbol with its quote decides;
    a bare 'BTC' is then ambiguous and gets None rather than a guess.
    """
    if not isinstance(coin, str):
        return None
    text = coin.strip().upper()
    if not text:
        return None
    for sym in symbols:
        if sym.upper() == text:
            return sym
    base, quote = _split_base_quote(text)
    if not quote:
        # Glued pairs such as "BTCUSDT" or "ETHUSD": peel a known quote off the end.
        for q in _KNOWN_QUOTES:
            if text.endswith(q) and len(text) > len(q) and not any(coin_name(s) == text for s in symbols):
                base, quote = text[: -len(q)], q
                break
    by_base = [s for s in symbols if coin_name(s) == base]
    if len(by_base) == 1:
        return by_base[0]
    if len(by_base) > 1 and quote:
        exact = [s for s in by_base if _split_base_quote(s.upper())[1].split(":")[0] == quote]
        if len(exact) == 1:
            return exact[0]
    return None


def _nullable_number(description: str, **bounds: float) -> dict[str, Any]:
    return {"type": ["number", "null"], "description": description, **bounds}


def decision_json_schema(symbols: Sequence[str], max_leverage: float) -> dict[str, Any]:
    """JSON Schema of the whole answer, ``{"decisions": [CoinDecision, ...]}``, for native structured output.

    It stays inside the subset OpenAI (json_schema, strict), Anthropic (tool input_schema) and llama.cpp
    (json_object with schema) all accept: no ``$ref``, no top-level ``anyOf``, every property required,
    nullable numbers as ``"type": ["number", "null"]`` and ``additionalProperties: false`` throughout.
    """
    if not symbols:
        raise ValueError("decision_json_schema needs at least one symbol")
    if not (isinstance(max_leverage, (int, float)) and math.isfinite(max_leverage) and max_leverage >= 1):
        raise ValueError(f"max_leverage must be a finite number >= 1, got {max_leverage!r}")
    coins = [coin_name(s) for s in symbols]
    if len(set(coins)) != len(coins):
        raise ValueError(f"symbols {list(symbols)} share a coin name; the model could not tell them apart")
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "coin": {"type": "string", "enum": coins, "description": "The coin this decision is for."},
            "signal": {"type": "string", "enum": [s.value for s in Signal]},
            "quantity": {
                "type": "number",
                "minimum": 0,
                "description": "Size in coins (base units); 0 for hold and close_position.",
            },
            "leverage": {"type": "number", "minimum": 1, "maximum": float(max_leverage)},
            "profit_target": _nullable_number("Absolute take-profit price, or null."),
            "stop_loss": _nullable_number("Absolute stop-loss price, or null."),
            "invalidation_condition": {
                "type": "string",
                "description": "When the idea is wrong, e.g. 'price < 95000 and rsi14 < 30'; empty if none.",
            },
            "confidence": _nullable_number("Confidence from 0 to 1.", minimum=0, maximum=1),
            "risk_usd": _nullable_number("Dollars lost if the stop-loss is hit, or null."),
            "justification": {"type": "string", "description": "Why, in one or two sentences."},
        },
        "additionalProperties": False,
    }
    item["required"] = list(item["properties"])
    return {
        "type": "object",
        # One object per coin: constrained decoders (llama.cpp) otherwise happily emit an empty list.
        "properties": {"decisions": {"type": "array", "items": item, "minItems": len(coins), "maxItems": len(coins)}},
        "required": ["decisions"],
        "additionalProperties": False,
    }


def to_engine_decision(d: CoinDecision, symbol: str) -> Decision:
    """Translate a model's decision into the engine's vocabulary; the RiskEngine then reviews it.

    Entries carry the size in base units (`SizeUnit.QUANTITY`) with the model's leverage and exit levels as
    stated: clamping and rejection (leverage caps, wrong-side stops, zero sizes) are the RiskEngine's job.
    """
    if d.signal is Signal.HOLD:
        return Decision(symbol=symbol, action=Action.HOLD, size=0.0, reason=d.justification)
    if d.signal is Signal.CLOSE_POSITION:
        return Decision(symbol=symbol, action=Action.CLOSE, size=0.0, reason=d.justification)
    action = Action.ENTER_LONG if d.signal is Signal.BUY_TO_ENTER else Action.ENTER_SHORT
    return Decision(
        symbol=symbol,
        action=action,
        size=d.quantity,
        size_unit=SizeUnit.QUANTITY,
        leverage=d.leverage,
        stop_loss=d.stop_loss,
        take_profit=d.profit_target,
        reason=d.justification,
    )
