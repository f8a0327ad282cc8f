"""Arena library.

`from arena_lib import backtest` gives the one backtest entry point (`arena_lib.engine.backtest.backtest`). It is
loaded on first access, so `import arena_lib` stays light: no engine, pandas or numba until a backtest is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arena_lib.engine.backtest import backtest

__all__ = ["backtest"]


def __getattr__(name: str) -> Any:
    if name == "backtest":
        from arena_lib.engine.backtest import backtest

        globals()["backtest"] = backtest  # later lookups skip this hook
        return backtest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
