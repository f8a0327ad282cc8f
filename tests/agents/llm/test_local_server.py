"""The real local LLM (SmolLM2-135M via llama_cpp.server) starts, answers the openai SDK, and stops cleanly.

These tests run the actual model: it is a declared dependency, so they only skip where the runtime is missing.
One module-scoped server serves the SDK tests; lifecycle tests start their own (about 1-2 s each).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from openai.types.chat import ChatCompletionMessageParam

from arena_lib.agents.llm.local_server import (
    DEFAULT_ALIAS,
    LocalLLMServer,
    is_loopback_host,
    local_llm_available,
    smollm2_model_path,
)

_UNAVAILABLE = local_llm_available()
needs_runtime = pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"local LLM runtime missing: {_UNAVAILABLE}")

COINS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
SIGNALS = ["buy", "sell", "hold", "close"]
DECISIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "decisions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "coin": {"type": "string", "enum": COINS},
                    "signal": {"type": "string", "enum": SIGNALS},
                    "quantity": {"type": "number", "minimum": 0},
                    "leverage": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["coin", "signal", "quantity", "leverage"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["decisions"],
    "additionalProperties": False,
}
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a crypto trading agent. Reply with JSON only."},
    {"role": "user", "content": "BTC/USDT 64000, up 2% in 24h. ETH/USDT 3100, down 1%. Decide."},
]


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLMServer]:
    if _UNAVAILABLE is not None:
        pytest.skip(f"local LLM runtime missing: {_UNAVAILABLE}")
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with LocalLLMServer(n_ctx=2048, log_path=log) as srv:
        yield srv


@needs_runtime
def test_openai_sdk_gets_a_completion(server: LocalLLMServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="not-needed", timeout=60)
    assert [m.id for m in client.models.list().data] == [DEFAULT_ALIAS]
    reply = client.chat.completions.create(
        model=DEFAULT_ALIAS,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    content = reply.choices[0].message.content
    assert isinstance(content, str)
    assert content.strip()
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 8


@needs_runtime
def test_json_object_schema_constrains_the_answer(server: LocalLLMServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="not-needed", timeout=60)
    reply = client.chat.completions.create(
        model=DEFAULT_ALIAS,
        messages=MESSAGES,
        max_tokens=200,
        temperature=0,
        seed=7,
        # llama_cpp.server's extension of json_object; the SDK's types only know OpenAI's own forms.
        response_format=cast(Any, {"type": "json_object", "schema": DECISIONS_SCHEMA}),
    )
    assert reply.choices[0].finish_reason == "stop"
    payload = json.loads(reply.choices[0].message.content or "")
    assert set(payload) == {"decisions"}
    assert 1 <= len(payload["decisions"]) <= 2
    for decision in payload["decisions"]:
        assert set(decision) == {"coin", "signal", "quantity", "leverage"}
        assert decision["coin"] in COINS
        assert decision["signal"] in SIGNALS
        assert isinstance(decision["quantity"], int | float)
        # Enums and types are enforced by the grammar; numeric minimum/maximum are NOT (llama-cpp-python 0.3.36):
        # SmolLM2 returns leverage 30 or 622 here, which is why validation and the RiskEngine must range-check.
        assert isinstance(decision["leverage"], int)


@needs_runtime
def test_stop_terminates_the_process_and_frees_the_port(tmp_path: Path) -> None:
    srv = LocalLLMServer(n_ctx=512, log_path=tmp_path / "server.log")
    with srv:
        pid, port = srv.pid, srv.port
        assert pid is not None
        assert srv.running
        assert not _port_is_free(srv.host, port)
    assert not srv.running
    assert srv.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _port_is_free(srv.host, port)
    srv.stop()  # idempotent
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()


@needs_runtime
def test_bad_model_file_raises_with_the_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is not a GGUF file" * 10)
    srv = LocalLLMServer(model_path=bad, log_path=tmp_path / "server.log", startup_timeout_s=30)
    with pytest.raises(RuntimeError, match="exited with code") as excinfo:
        srv.start()
    assert "GGUF" in str(excinfo.value)  # the loader's complaint, copied from the log
    assert not srv.running


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    if _UNAVAILABLE is not None:
        pytest.skip(f"local LLM runtime missing: {_UNAVAILABLE}")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        LocalLLMServer(model_path=tmp_path / "absent.gguf").start()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        LocalLLMServer(host=host)
    assert LocalLLMServer(host=host, allow_remote=True).host == host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


@pytest.mark.parametrize(
    "kwargs", [{"port": -1}, {"port": 70000}, {"n_ctx": 16}, {"startup_timeout_s": 0}, {"n_threads": 0}, {"alias": " "}]
)
def test_bad_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LocalLLMServer(**kwargs)  # type: ignore[arg-type]


def test_base_url_needs_a_port() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = LocalLLMServer().base_url
    assert LocalLLMServer(port=8088).base_url == "http://127.0.0.1:8088/v1"
    assert LocalLLMServer(host="::1", port=8088).base_url == "http://[::1]:8088/v1"


@needs_runtime
def test_model_path_points_into_the_wheel() -> None:
    path = smollm2_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def _serve_in_subprocess(port: int) -> subprocess.Popen[str]:
    code = f"from arena_lib.agents.llm.local_server import serve_forever; serve_forever(port={port})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@needs_runtime
def test_serve_forever_prints_the_endpoint_and_stops_on_sigterm() -> None:
    port = _free_port()
    proc = _serve_in_subprocess(port)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.strip() == f"base_url: http://127.0.0.1:{port}/v1"
        assert second.split() == ["model:", DEFAULT_ALIAS]
        assert not _port_is_free("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert _port_is_free("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_runtime
def test_server_dies_with_a_killed_parent() -> None:
    # SIGKILL skips atexit: only the child's parent watchdog can stop the server then.
    port = _free_port()
    proc = _serve_in_subprocess(port)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("base_url:")
    proc.kill()
    proc.wait()
    stopped = _wait_until(lambda: _port_is_free("127.0.0.1", port), timeout_s=5)
    if not stopped:
        _kill_orphan_server(port)
    assert stopped, "server outlived its parent"


def _kill_orphan_server(port: int) -> None:
    """Clean up after a failed watchdog test: find the llama_cpp.server child by its ``--port`` argument."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--model_alias" in argv and str(port).encode() in argv:
            os.kill(int(entry.name), signal.SIGKILL)
