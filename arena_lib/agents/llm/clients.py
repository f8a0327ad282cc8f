"""Async LLM clients over the real ``openai`` and ``anthropic`` SDKs, with retries bounded by a caller's deadline.

Why our own retry loop and not the SDKs': an arena round gives every agent the same decision deadline, and the SDKs'
retries know nothing about it (they may sleep 60 s on a ``retry-after``). Here the SDKs run with ``max_retries=0``,
and `call_with_retries` retries 429s (honouring ``retry-after``), 5xx, timeouts, connection errors and malformed
bodies with exponential backoff and jitter, only while retries remain *and* the wait ends before the deadline. Each
attempt's timeout is ``min(cfg.timeout_s, time left)``. Other 4xx fail at once (``bad_request`` / ``auth``).

Structured output modes (`LLMAgentConfig.structured_output`, "auto" resolved per provider):
- OpenAI-style: ``json_schema`` (OpenAI's strict-less schema form), ``json_object_schema`` (``{"type": "json_object",
  "schema": ...}``, what llama-cpp-python's server constrains decoding with), ``json_object``, ``none``. A server
  that rejects ``json_schema`` (llama.cpp answers HTTP 500) makes the client fall back to ``json_object`` once and
  keep using it for its lifetime.
- Anthropic: ``tool`` (one forced tool ``submit_<schema_name>`` whose ``input_schema`` is the schema; the answer
  is that tool call's input as JSON text) or ``none`` (text blocks). anthropic>=1.0 removed ``temperature`` from
  ``messages.create``'s signature, so it travels in ``extra_body`` (same wire format); a model that rejects it (newer
  Claude models answer 400) makes the client omit it from then on.

Secrets: a client holds the key only inside the SDK object; its repr, its log lines and every `LLMCallError`
message are scrubbed of the key, and SDK exceptions (whose request objects carry the key) are not chained.
Latency uses ``time.monotonic``: it measures wall duration of a call, not market time, so the injected Clock rule
does not apply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import random
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import anthropic
import openai

from arena_lib.agents.llm.config import LLMAgentConfig

logger = logging.getLogger(__name__)

ErrorKind = Literal["timeout", "rate_limited", "server_error", "bad_request", "auth", "connection", "empty"]
NO_KEY_PLACEHOLDER = "not-needed"  # the openai SDK insists on a key, even for a local server that ignores it
BACKOFF_BASE_S = 0.25
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_S = 8.0
_MESSAGE_LIMIT = 300
_SECRET_LIKE = re.compile(r"\b(sk|key|pk)[-_][A-Za-z0-9_\-*]{8,}")

T = TypeVar("T")


@dataclass(frozen=True)
class LLMRequest:
    """One completion: a system and a user message, sampling, and optionally the JSON schema of the answer."""

    system: str
    user: str
    temperature: float
    max_tokens: int
    json_schema: dict[str, Any] | None = None
    schema_name: str = "decisions"
    extra_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LLMResponse:
    """The answer text plus what it cost: tokens, wall latency (all attempts), attempts and the mode used."""

    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    model: str
    finish_reason: str  # the provider's own value: stop / length (OpenAI), end_turn / tool_use / max_tokens
    attempts: int
    structured: str

    @property
    def truncated(self) -> bool:
        """True when the model stopped at max_tokens, so the text is likely cut mid-answer."""
        return self.finish_reason in ("length", "max_tokens")


class LLMCallError(Exception):
    """A call that produced no usable answer. `kind` says why; the message never contains the key."""

    def __init__(self, kind: ErrorKind, message: str, *, attempts: int, status_code: int | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.attempts = attempts
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"LLMCallError(kind={self.kind!r}, attempts={self.attempts}, message={str(self)!r})"


class LLMClient(Protocol):
    """What an LLM agent needs from a provider: one async completion that returns or raises by `deadline`."""

    provider: str
    model: str

    async def complete(self, request: LLMRequest, deadline: float) -> LLMResponse:
        """`deadline` is a `time.monotonic()` value by which this returns a response or raises `LLMCallError`."""
        ...


# -- retries -----------------------------------------------------------------------------------------------


class AttemptFailed(Exception):
    """One failed attempt, classified. `immediate` retries at once without spending a retry (format fallback)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        immediate: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.immediate = immediate


def backoff_delay(retry_index: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `retry_index` (1-based): 0.25 s doubling, capped at 8 s, equal jitter."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * BACKOFF_FACTOR ** max(0, retry_index - 1))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    max_retries: int,
    timeout_s: float,
    deadline: float,
    label: str,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run `attempt(timeout)` until it succeeds; returns (result, attempts made) or raises `LLMCallError`.

    `attempt` raises `AttemptFailed`. A retry happens only while `max_retries` is not spent and its wait (the
    server's retry-after, else `backoff_delay`) ends before `deadline`; otherwise the last failure is raised at
    once, so a caller is never kept past its deadline by a sleep.
    """
    attempts = retries = 0
    fallback_used = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LLMCallError("timeout", f"{label}: deadline reached after {attempts} attempt(s)", attempts=attempts)
        attempts += 1
        try:
            return await attempt(min(timeout_s, left)), attempts
        except AttemptFailed as failure:
            message = f"{label}: {failure} (attempt {attempts})"
            if failure.immediate and not fallback_used:
                fallback_used = True  # one free re-ask per call, so a flapping server cannot loop us
                continue
            if not failure.retryable or retries >= max_retries:
                raise LLMCallError(failure.kind, message, attempts=attempts, status_code=failure.status_code) from None
            retries += 1
            wait = failure.retry_after_s if failure.retry_after_s is not None else backoff_delay(retries, rng)
            if time.monotonic() + wait >= deadline:
                raise LLMCallError(
                    failure.kind,
                    f"{message}; not retrying: waiting {wait:.2f}s would pass the deadline",
                    attempts=attempts,
                    status_code=failure.status_code,
                ) from None
            logger.info("%s: %s failure, retry %d/%d in %.2fs", label, failure.kind, retries, max_retries, wait)
            await asyncio.sleep(wait)


def scrub(text: str, secret: str | None) -> str:
    """`text` without `secret` or anything shaped like an API key, cut to a readable length."""
    if secret and secret != NO_KEY_PLACEHOLDER:
        text = text.replace(secret, "***")
    text = _SECRET_LIKE.sub(lambda m: m.group(1) + "-***", text)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (delta-seconds form); None when absent or a date."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


_TIMEOUT_ERRORS = (TimeoutError, openai.APITimeoutError, anthropic.APITimeoutError)
_CONNECTION_ERRORS = (openai.APIConnectionError, anthropic.APIConnectionError)
_STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)
_MALFORMED_ERRORS = (json.JSONDecodeError, openai.APIResponseValidationError, anthropic.APIResponseValidationError)


def classify(exc: BaseException, secret: str | None) -> AttemptFailed:
    """Map an SDK exception to an `AttemptFailed`; unknown exceptions are programming errors and re-raised."""
    if isinstance(exc, _TIMEOUT_ERRORS):
        return AttemptFailed("timeout", "request timed out", retryable=True)
    if isinstance(exc, _CONNECTION_ERRORS):
        return AttemptFailed("connection", scrub(f"connection failed: {exc}", secret), retryable=True)
    if isinstance(exc, _STATUS_ERRORS):
        status = exc.status_code
        detail = scrub(f"HTTP {status}: {exc.message}", secret)
        if status == 429:
            headers = exc.response.headers
            return AttemptFailed(
                "rate_limited", detail, retryable=True, status_code=status, retry_after_s=_retry_after(headers)
            )
        if status == 408:
            return AttemptFailed("timeout", detail, retryable=True, status_code=status)
        if status >= 500:
            return AttemptFailed("server_error", detail, retryable=True, status_code=status)
        if status in (401, 403):
            return AttemptFailed("auth", detail, retryable=False, status_code=status)
        return AttemptFailed("bad_request", detail, retryable=False, status_code=status)
    if isinstance(exc, _MALFORMED_ERRORS):
        return AttemptFailed("server_error", scrub(f"malformed response body: {exc}", secret), retryable=True)
    raise exc


async def _bounded(call: Awaitable[T], timeout: float, secret: str | None) -> T:
    """Await an SDK call under a hard wall-clock bound, classifying its failures."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except AttemptFailed:
        raise
    except Exception as exc:
        raise classify(exc, secret) from None


# -- clients -----------------------------------------------------------------------------------------------


class _PerLoop:
    """One SDK client per running event loop: httpx connection pools must not cross loops (``asyncio.run`` twice)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
        self._client: Any = None

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop() is not loop:
            self._client = self._factory()
            self._loop = weakref.ref(loop)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is not None and self._loop() is asyncio.get_running_loop():
            await self._client.close()
        self._client = self._loop = None


def _split_params(params: Mapping[str, Any], method: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split extra params into keyword arguments the SDK method knows and the rest (sent as ``extra_body``)."""
    known = set(inspect.signature(method).parameters)
    return {k: v for k, v in params.items() if k in known}, {k: v for k, v in params.items() if k not in known}


def _schema_unsupported(failure: AttemptFailed) -> bool:
    text = str(failure).lower()
    return failure.status_code in (400, 422, 500) and ("json_schema" in text or "response_format" in text)


class _SdkClient:
    """What both provider clients share: the retry loop over `_attempt`, and closing the SDK's connections."""

    provider: str
    model: str
    _cfg: LLMAgentConfig
    _rng: random.Random | None
    _sdk: _PerLoop

    async def _attempt(self, request: LLMRequest, timeout: float) -> LLMResponse:
        raise NotImplementedError

    async def complete(self, request: LLMRequest, deadline: float) -> LLMResponse:
        return await _complete(self, request, deadline)

    async def aclose(self) -> None:
        """Close the HTTP connection pool of the current event loop's SDK client."""
        await self._sdk.aclose()


class OpenAIChatClient(_SdkClient):
    """Chat Completions through ``openai.AsyncOpenAI``: OpenAI itself and any OpenAI-compatible endpoint."""

    def __init__(self, cfg: LLMAgentConfig, api_key: str, *, rng: random.Random | None = None) -> None:
        self.provider: str = cfg.provider
        self.model: str = cfg.model
        self._cfg = cfg
        self._secret = api_key
        self._rng = rng
        self.structured = cfg.resolved_structured_output
        self._sdk = _PerLoop(
            lambda: openai.AsyncOpenAI(base_url=cfg.base_url, api_key=api_key, max_retries=0, timeout=cfg.timeout_s)
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIChatClient(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self._cfg.base_url!r}, structured={self.structured!r})"
        )

    def _response_format(self, request: LLMRequest) -> tuple[str, dict[str, Any] | None]:
        mode = self.structured
        if mode in ("json_schema", "json_object_schema") and request.json_schema is None:
            mode = "json_object"  # nothing to constrain with; still ask for JSON
        if mode == "json_schema":
            spec = {"name": request.schema_name, "schema": request.json_schema, "strict": False}
            return mode, {"type": "json_schema", "json_schema": spec}
        if mode == "json_object_schema":
            return mode, {"type": "json_object", "schema": request.json_schema}
        if mode == "json_object":
            return mode, {"type": "json_object"}
        return mode, None

    async def _attempt(self, request: LLMRequest, timeout: float) -> LLMResponse:
        sdk = self._sdk.get()
        create = sdk.chat.completions.create
        mode, response_format = self._response_format(request)
        params = {**self._cfg.extra_params, **request.extra_params, "temperature": request.temperature}
        kwargs, extra_body = _split_params(params, create)
        kwargs.update(
            model=self.model,
            messages=[{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
            timeout=timeout,
        )
        # OpenAI's newer models take only max_completion_tokens; compatible servers know max_tokens.
        kwargs["max_completion_tokens" if self.provider == "openai" else "max_tokens"] = request.max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if extra_body:
            kwargs["extra_body"] = extra_body
        try:
            resp = await _bounded(create(**kwargs), timeout, self._secret)
        except AttemptFailed as failure:
            if mode == "json_schema" and _schema_unsupported(failure):
                logger.info(
                    "%s %s rejected response_format json_schema (HTTP %s); using json_object from now on",
                    self.provider,
                    self.model,
                    failure.status_code,
                )
                self.structured = "json_object"
                failure.immediate = True
            raise
        if not resp.choices:
            raise AttemptFailed("empty", "empty answer (no choices)", retryable=False)
        choice = resp.choices[0]
        text = choice.message.content or ""
        if not text.strip():
            raise AttemptFailed("empty", f"empty answer (finish_reason={choice.finish_reason})", retryable=False)
        usage = resp.usage
        return LLMResponse(
            text=text,
            input_tokens=(usage.prompt_tokens or 0) if usage else 0,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            latency_s=0.0,  # stamped by _complete, over all attempts
            model=resp.model or self.model,
            finish_reason=choice.finish_reason or "unknown",
            attempts=0,
            structured=mode,
        )


class AnthropicClient(_SdkClient):
    """Messages API through ``anthropic.AsyncAnthropic``, structured answers via one forced tool."""

    def __init__(self, cfg: LLMAgentConfig, api_key: str, *, rng: random.Random | None = None) -> None:
        self.provider: str = cfg.provider
        self.model: str = cfg.model
        self._cfg = cfg
        self._secret = api_key
        self._rng = rng
        self.structured = cfg.resolved_structured_output
        self._send_temperature = True
        self._sdk = _PerLoop(
            lambda: anthropic.AsyncAnthropic(
                base_url=cfg.base_url, api_key=api_key, max_retries=0, timeout=cfg.timeout_s
            )
        )

    def __repr__(self) -> str:
        return (
            f"AnthropicClient(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self._cfg.base_url!r}, structured={self.structured!r})"
        )

    async def _attempt(self, request: LLMRequest, timeout: float) -> LLMResponse:
        sdk = self._sdk.get()
        create = sdk.messages.create
        params = {**self._cfg.extra_params, **request.extra_params}
        if self._send_temperature:
            # anthropic>=1.0 dropped sampling arguments from create(); the API still takes them in the body.
            params["temperature"] = request.temperature
        kwargs, extra_body = _split_params(params, create)
        kwargs.update(
            model=self.model,
            max_tokens=request.max_tokens,
            system=request.system,
            messages=[{"role": "user", "content": request.user}],
            timeout=timeout,
        )
        mode = self.structured if request.json_schema is not None else "none"
        tool_name = f"submit_{request.schema_name}"
        if mode == "tool":
            schema = request.json_schema or {}
            if schema.get("type") != "object":
                raise ValueError(f"tool mode needs a JSON schema of type 'object', got type {schema.get('type')!r}")
            kwargs["tools"] = [
                {
                    "name": tool_name,
                    "description": "Submit the answer in the requested structure.",
                    "input_schema": schema,
                }
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": tool_name}
        if extra_body:
            kwargs["extra_body"] = extra_body
        try:
            resp = await _bounded(create(**kwargs), timeout, self._secret)
        except AttemptFailed as failure:
            if self._send_temperature and failure.status_code == 400 and "temperature" in str(failure).lower():
                # Newer Claude models reject sampling parameters; their default sampling is then the only one.
                logger.info("%s rejected temperature (HTTP 400); omitting it from now on", self.model)
                self._send_temperature = False
                failure.immediate = True
            raise
        blocks = list(resp.content or [])
        tool_inputs = [b.input for b in blocks if b.type == "tool_use" and b.name == tool_name]
        if mode == "tool" and tool_inputs:
            text = json.dumps(tool_inputs[0])
        else:  # mode none, or the model answered in prose despite the forced tool
            text = "".join(b.text for b in blocks if b.type == "text")
        if not text.strip():
            raise AttemptFailed("empty", f"empty answer (stop_reason={resp.stop_reason})", retryable=False)
        usage = resp.usage
        return LLMResponse(
            text=text,
            input_tokens=(usage.input_tokens or 0) if usage else 0,
            output_tokens=(usage.output_tokens or 0) if usage else 0,
            latency_s=0.0,  # stamped by _complete, over all attempts
            model=resp.model or self.model,
            finish_reason=resp.stop_reason or "unknown",
            attempts=0,
            structured=mode,
        )


async def _complete(client: _SdkClient, request: LLMRequest, deadline: float) -> LLMResponse:
    """Shared retry wrapper: runs the client's attempts within the deadline and stamps latency and attempts."""
    started = time.monotonic()
    label = f"{client.provider} {client.model}"

    cfg = client._cfg
    response, attempts = await call_with_retries(
        lambda timeout: client._attempt(request, timeout),
        max_retries=cfg.max_retries,
        timeout_s=cfg.timeout_s,
        deadline=deadline,
        label=label,
        rng=client._rng,
    )
    return dataclasses.replace(response, latency_s=time.monotonic() - started, attempts=attempts)


def make_client(cfg: LLMAgentConfig, api_key: str | None) -> OpenAIChatClient | AnthropicClient:
    """The client for `cfg`'s provider. `api_key` comes from `resolve_api_key`; None only for keyless local servers."""
    if api_key is None:
        if cfg.needs_key:
            raise ValueError(
                f"LLM agent {cfg.name!r} is not configured: set {cfg.api_key_env} (in the environment or .env)"
            )
        api_key = NO_KEY_PLACEHOLDER
    if cfg.provider == "anthropic":
        return AnthropicClient(cfg, api_key)
    return OpenAIChatClient(cfg, api_key)
