"""The LLM clients against a loopback server that speaks the OpenAI and Anthropic wire protocols.

Every test runs the real ``openai`` / ``anthropic`` SDKs over HTTP on 127.0.0.1; the server's answers are scripted
fixtures (tests/servers/llm.py), never a model's output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from arena_lib.agents.llm.clients import (
    NO_KEY_PLACEHOLDER,
    AnthropicClient,
    LLMCallError,
    LLMRequest,
    LLMResponse,
    OpenAIChatClient,
    backoff_delay,
    make_client,
)
from arena_lib.agents.llm.config import LLMAgentConfig, token_cost
from tests.servers.llm import CHAT_PATH, INJECTION_PREFIX, MESSAGES_PATH, LLMServer, Reply, Script

KEY = "sk-test-SECRET-0123456789abcdef"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"decisions": {"type": "array", "items": {"type": "object"}}},
    "required": ["decisions"],
}
ANSWER = {"decisions": [{"symbol": "BTC/USDT", "action": "hold"}]}
REQUEST = LLMRequest(system="You trade crypto.", user="BTC/USDT closed at 42000.", temperature=0.0, max_tokens=256)
SCHEMA_REQUEST = LLMRequest(
    system="You trade crypto.", user="BTC/USDT closed at 42000.", temperature=0.0, max_tokens=256, json_schema=SCHEMA
)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(Script(), api_key=KEY) as srv:
        yield srv
        assert srv.errors == [], f"loopback fixture misuse: {srv.errors}"


def config(server: LLMServer, provider: str = "openai", **overrides: Any) -> LLMAgentConfig:
    base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    fields: dict[str, Any] = {"name": "t", "provider": provider, "model": "m-1", "base_url": base_url}
    if provider == "openai_compatible":
        fields["api_key_env"] = "COMPAT_KEY"
    return LLMAgentConfig(**{**fields, **overrides})


def complete(client: Any, request: LLMRequest = SCHEMA_REQUEST, budget_s: float = 10.0) -> LLMResponse:
    async def go() -> LLMResponse:
        try:
            return await client.complete(request, time.monotonic() + budget_s)
        finally:
            await client.aclose()

    return asyncio.run(go())


def fail(client: Any, request: LLMRequest = SCHEMA_REQUEST, budget_s: float = 10.0) -> tuple[LLMCallError, float]:
    started = time.monotonic()
    with pytest.raises(LLMCallError) as info:
        complete(client, request, budget_s)
    return info.value, time.monotonic() - started


# -- happy paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected_format"),
    [
        (
            "json_schema",
            {"type": "json_schema", "json_schema": {"name": "decisions", "schema": SCHEMA, "strict": False}},
        ),
        ("json_object_schema", {"type": "json_object", "schema": SCHEMA}),
        ("json_object", {"type": "json_object"}),
        ("none", None),
    ],
)
def test_openai_structured_modes_send_the_documented_response_format(
    server: LLMServer, mode: str, expected_format: dict[str, Any] | None
) -> None:
    server.script.push(Reply(data=ANSWER, input_tokens=120, output_tokens=30))
    client = make_client(config(server, structured_output=mode), KEY)

    response = complete(client)

    assert json.loads(response.text) == ANSWER
    assert (response.input_tokens, response.output_tokens) == (120, 30)
    assert response.structured == mode
    assert response.finish_reason == "stop"
    assert response.attempts == 1
    assert response.model == "m-1"
    body = server.bodies(CHAT_PATH)[0]
    assert body.get("response_format") == expected_format
    assert body["messages"] == [
        {"role": "system", "content": SCHEMA_REQUEST.system},
        {"role": "user", "content": SCHEMA_REQUEST.user},
    ]
    assert body["max_completion_tokens"] == 256  # OpenAI's current name; compatible servers get max_tokens


def test_openai_compatible_defaults_to_json_object_and_max_tokens(server: LLMServer) -> None:
    server.script.push(Reply(data=ANSWER))
    cfg = config(server, "openai_compatible", extra_params={"top_p": 0.9, "min_p": 0.05})
    response = complete(make_client(cfg, KEY))

    assert response.structured == "json_object"
    body = server.bodies(CHAT_PATH)[0]
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 256
    assert "max_completion_tokens" not in body
    # top_p is an SDK argument, min_p (a llama.cpp extension) travels in the body as extra_body
    assert (body["top_p"], body["min_p"]) == (0.9, 0.05)


def test_keyless_local_endpoint_gets_a_placeholder_key() -> None:
    with LLMServer(Script(Reply(text="ok")), api_key=NO_KEY_PLACEHOLDER) as srv:
        cfg = LLMAgentConfig(name="local", provider="openai_compatible", model="smollm2", base_url=srv.openai_base_url)
        assert complete(make_client(cfg, None), REQUEST).text == "ok"


def test_anthropic_tool_mode_forces_one_tool_and_returns_its_input(server: LLMServer) -> None:
    server.script.push(Reply(data=ANSWER, input_tokens=200, output_tokens=40))
    client = make_client(config(server, "anthropic"), KEY)
    assert isinstance(client, AnthropicClient)

    response = complete(client)

    assert json.loads(response.text) == ANSWER
    assert response.structured == "tool"
    assert response.finish_reason == "tool_use"
    assert (response.input_tokens, response.output_tokens) == (200, 40)
    body = server.bodies(MESSAGES_PATH)[0]
    assert [t["name"] for t in body["tools"]] == ["submit_decisions"]
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "submit_decisions"}
    assert body["system"] == SCHEMA_REQUEST.system
    assert body["max_tokens"] == 256


def test_anthropic_none_mode_concatenates_text_and_sends_no_tools(server: LLMServer) -> None:
    server.script.push(Reply(text="HOLD everything"))
    response = complete(make_client(config(server, "anthropic", structured_output="none"), KEY))

    assert response.text == "HOLD everything"
    assert response.structured == "none"
    assert response.finish_reason == "end_turn"
    assert "tools" not in server.bodies(MESSAGES_PATH)[0]


def test_anthropic_key_travels_as_bearer_and_a_wrong_key_is_auth_without_retry(server: LLMServer) -> None:
    server.script.push(Reply(text="ok"))
    assert complete(make_client(config(server, "anthropic"), KEY), REQUEST).text == "ok"
    assert server.requests[0].headers["authorization"] == "Bearer <redacted>"  # anthropic 2.x sends Bearer

    error, _ = fail(make_client(config(server, "anthropic", max_retries=3), "sk-wrong-key-000000000"), REQUEST)
    assert error.kind == "auth"
    assert error.status_code == 401
    assert error.attempts == 1
    assert server.calls(MESSAGES_PATH) == 2


def test_token_usage_prices_the_call(server: LLMServer) -> None:
    server.script.push(Reply(data=ANSWER, input_tokens=1_000_000, output_tokens=250_000))
    cfg = config(server, cost_per_1m_input=0.15, cost_per_1m_output=0.60)
    response = complete(make_client(cfg, KEY))
    assert token_cost(cfg, response.input_tokens, response.output_tokens) == pytest.approx(0.15 + 0.15)


# -- faults and retries ------------------------------------------------------------------------------------


def test_rate_limit_honours_retry_after_then_succeeds(server: LLMServer) -> None:
    server.script.push(Reply(fault="rate_limit", retry_after_s=0.3), Reply(data=ANSWER))
    started = time.monotonic()
    response = complete(make_client(config(server), KEY))

    assert response.attempts == 2
    assert time.monotonic() - started >= 0.3
    assert response.latency_s >= 0.3  # latency covers every attempt and the wait
    assert server.calls(CHAT_PATH) == 2


def test_server_error_is_retried_then_succeeds(server: LLMServer) -> None:
    server.script.push(Reply(fault="server_error"), Reply(data=ANSWER))
    response = complete(make_client(config(server, "anthropic"), KEY))
    assert response.attempts == 2
    assert json.loads(response.text) == ANSWER


def test_malformed_body_is_retried_as_server_error(server: LLMServer) -> None:
    server.script.push(Reply(fault="malformed"), Reply(data=ANSWER))
    assert complete(make_client(config(server), KEY)).attempts == 2

    server.script.push(Reply(fault="malformed"))
    error, _ = fail(make_client(config(server, max_retries=0), KEY))
    assert error.kind == "server_error"
    assert "malformed" in str(error)


def test_retries_stop_when_max_retries_is_spent(server: LLMServer) -> None:
    server.script.push(*[Reply(fault="server_error")] * 3)
    error, _ = fail(make_client(config(server, max_retries=1), KEY))
    assert (error.kind, error.attempts, error.status_code) == ("server_error", 2, 500)
    assert server.calls(CHAT_PATH) == 2


def test_a_retry_after_past_the_deadline_raises_at_once(server: LLMServer) -> None:
    server.script.push(Reply(fault="rate_limit", retry_after_s=30), Reply(data=ANSWER))
    error, elapsed = fail(make_client(config(server, max_retries=5), KEY), budget_s=2.0)

    assert error.kind == "rate_limited"
    assert error.attempts == 1
    assert elapsed < 1.0  # did not sleep towards the 30 s retry-after, nor until the 2 s deadline
    assert "deadline" in str(error)
    assert server.calls(CHAT_PATH) == 1


def test_timeout_raises_within_the_attempt_timeout(server: LLMServer) -> None:
    server.script.push(Reply(fault="timeout", latency_s=10))
    error, elapsed = fail(make_client(config(server, timeout_s=0.5, max_retries=0), KEY))
    assert error.kind == "timeout"
    assert 0.4 < elapsed < 1.5


def test_timeout_is_bounded_by_the_deadline_not_the_config(server: LLMServer) -> None:
    server.script.default = Reply(fault="timeout", latency_s=10)
    error, elapsed = fail(make_client(config(server, timeout_s=30, max_retries=3), KEY), budget_s=0.8)
    assert error.kind == "timeout"
    assert elapsed < 1.6


def test_a_passed_deadline_makes_no_call(server: LLMServer) -> None:
    error, _ = fail(make_client(config(server), KEY), budget_s=-1.0)
    assert (error.kind, error.attempts) == ("timeout", 0)
    assert server.calls() == 0


def test_other_4xx_is_bad_request_and_not_retried(server: LLMServer) -> None:
    bogus = LLMRequest(
        system="s", user="u", temperature=0, max_tokens=8, extra_params={"response_format": {"type": "xml"}}
    )
    error, _ = fail(make_client(config(server, structured_output="none", max_retries=3), KEY), bogus)
    assert (error.kind, error.status_code, error.attempts) == ("bad_request", 400, 1)


def test_empty_answer_raises_empty(server: LLMServer) -> None:
    server.script.push(Reply(text=""))
    error, _ = fail(make_client(config(server), KEY))
    assert (error.kind, error.attempts) == ("empty", 1)


def test_truncated_answer_is_returned_and_flagged(server: LLMServer) -> None:
    server.script.push(Reply(data=ANSWER, fault="truncated"), Reply(data=ANSWER, fault="truncated"))
    for provider in ("openai", "anthropic"):
        response = complete(
            make_client(config(server, provider, structured_output="none" if provider == "anthropic" else "auto"), KEY)
        )
        assert response.truncated
        assert response.finish_reason == ("length" if provider == "openai" else "max_tokens")
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text)


def test_injection_text_reaches_the_caller_verbatim_for_the_parser_to_judge(server: LLMServer) -> None:
    server.script.push(Reply(data=ANSWER, fault="injection"))
    response = complete(make_client(config(server, structured_output="json_object"), KEY))
    assert response.text.startswith(INJECTION_PREFIX)
    assert json.dumps(ANSWER) in response.text


def test_json_schema_rejection_falls_back_to_json_object_for_the_clients_lifetime(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with LLMServer(Script(Reply(data=ANSWER)), json_schema_supported=False) as srv:
        cfg = LLMAgentConfig(
            name="llama",
            provider="openai_compatible",
            model="smollm2",
            base_url=srv.openai_base_url,
            structured_output="json_schema",
            max_retries=0,
        )
        client = make_client(cfg, None)
        with caplog.at_level(logging.INFO, logger="arena_lib.agents.llm.clients"):
            first = complete(client)
        second = complete(client)

        assert (first.structured, first.attempts) == ("json_object", 2)  # the fallback spent no retry
        assert (second.structured, second.attempts) == ("json_object", 1)
        assert srv.response_formats() == ["json_schema", "json_object", "json_object"]
        assert any("json_schema" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


# -- streaming, concurrency, fixture behaviour --------------------------------------------------------------


def test_openai_sdk_streams_from_the_server(server: LLMServer) -> None:
    text = "A streamed answer that spans several chunks."
    server.script.push(Reply(text=text, output_tokens=9))

    async def go() -> tuple[list[str], Any]:
        sdk = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0)
        pieces, usage = [], None
        stream = await sdk.chat.completions.create(
            model="m-1",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        await sdk.close()
        return pieces, usage

    pieces, usage = asyncio.run(go())
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert usage.completion_tokens == 9


def test_concurrent_calls_are_served_in_parallel(server: LLMServer) -> None:
    server.script.default = Reply(data=ANSWER, latency_s=1.0)
    client = make_client(config(server), KEY)

    async def go() -> list[LLMResponse]:
        deadline = time.monotonic() + 10
        try:
            return await asyncio.gather(*[client.complete(SCHEMA_REQUEST, deadline) for _ in range(8)])
        finally:
            await client.aclose()

    started = time.monotonic()
    responses = asyncio.run(go())
    assert time.monotonic() - started < 2.5  # loose functional bound: 8 x 1 s served at once, not in series
    assert len(responses) == 8
    assert server.max_in_flight == 8


def test_one_client_survives_several_event_loops(server: LLMServer) -> None:
    server.script.default = Reply(text="ok")
    client = make_client(config(server), KEY)
    for _ in range(2):
        assert asyncio.run(client.complete(REQUEST, time.monotonic() + 5)).text == "ok"


def test_script_answers_from_the_prompt_and_per_model_queues(server: LLMServer) -> None:
    def hold_named_coins(body: dict[str, Any]) -> Reply:
        prompt = body["messages"][-1]["content"]
        coins = re.findall(r"\b[A-Z]{2,5}/USDT\b", prompt)
        return Reply(data={"decisions": [{"symbol": c, "action": "hold"} for c in coins]})

    server.script.default = hold_named_coins
    server.script.push(Reply(text="queued for m-2"), model="m-2")
    ask = LLMRequest(system="s", user="Decide for BTC/USDT and SOL/USDT.", temperature=0, max_tokens=64)

    answer = json.loads(complete(make_client(config(server), KEY), ask).text)
    assert [d["symbol"] for d in answer["decisions"]] == ["BTC/USDT", "SOL/USDT"]
    assert complete(make_client(config(server, model="m-2"), KEY), ask).text == "queued for m-2"
    assert server.calls(CHAT_PATH, model="m-2") == 1

    async def models() -> list[str]:
        sdk = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0)
        listed = [m.id async for m in sdk.models.list()]
        await sdk.close()
        return listed

    assert set(asyncio.run(models())) == {"m-1", "m-2"}


# -- secrets and helpers ------------------------------------------------------------------------------------


def test_the_key_never_shows_in_reprs_errors_or_logs(server: LLMServer, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(server, max_retries=1)
    client = make_client(cfg, KEY)
    bad_key = "sk-live-LEAKED-abcdefghijklmnop"
    bad_client = make_client(cfg, bad_key)
    server.script.push(Reply(fault="server_error"), Reply(fault="server_error"))

    with caplog.at_level(logging.DEBUG):
        error, _ = fail(client)
        auth_error, _ = fail(bad_client)  # the server echoes the presented key in its 401 message

    assert auth_error.kind == "auth"
    for secret in (KEY, bad_key):
        for text in (
            repr(cfg),
            str(cfg.model_dump()),
            repr(client),
            repr(bad_client),
            str(error),
            repr(error),
            str(auth_error),
            caplog.text,
        ):
            assert secret not in text
    assert auth_error.__cause__ is None  # SDK exceptions carry the request headers; they are not chained


def test_make_client_picks_the_sdk_and_refuses_a_missing_key(server: LLMServer) -> None:
    assert isinstance(make_client(config(server), KEY), OpenAIChatClient)
    assert isinstance(make_client(config(server, "openai_compatible"), KEY), OpenAIChatClient)
    assert isinstance(make_client(config(server, "anthropic"), KEY), AnthropicClient)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_client(config(server), None)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(0)
    for retry, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (6, 8.0), (12, 8.0)]:
        delays = [backoff_delay(retry, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_anthropic_temperature_travels_in_the_body_and_is_dropped_when_rejected() -> None:
    with LLMServer(Script(Reply(text="ok")), temperature_supported=False) as srv:
        cfg = LLMAgentConfig(name="c", provider="anthropic", model="claude-x", base_url=srv.anthropic_base_url)
        client = make_client(cfg, KEY)
        first, second = complete(client, REQUEST), complete(client, REQUEST)

        bodies = srv.bodies(MESSAGES_PATH)
        assert bodies[0]["temperature"] == 0.0
        assert ["temperature" in b for b in bodies] == [True, False, False]
        assert (first.attempts, second.attempts) == (2, 1)
