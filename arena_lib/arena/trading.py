"""One invocation of a scheduled paper or live job: fetch the latest closed bars, play them, commit them.

The command line (`arena trade`) and the Prefect flow (`flows/trade.py`) both call `trade_once`, so a job behaves
the same whichever starts it.
"""

from __future__ import annotations

from arena_lib.agents.llm.cache import ResponseCache
from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.live import live_step, model_alias_problems
from arena_lib.arena.paper import paper_feed
from arena_lib.arena.session import RunReport, trade_step
from arena_lib.arena.store import ArenaStore
from arena_lib.execution.latch import check_latch


def trade_once(
    config: ArenaConfig,
    store: ArenaStore,
    *,
    job: str,
    mode: str,
    confirm: str | None = None,
    exchange_url: str | None = None,
    cache: ResponseCache | None = None,
) -> RunReport:
    """Play what closed since the job's last bar in `mode` (paper or live).

    Raises:
        LiveNotArmedError: live mode without the latch; nothing was started.
    """
    if mode == "live":
        # The latch before anything, even the candles; `live_step` checks it again with the registry's versions.
        names = [q.label or q.agent for q in config.quant] + [c.name for c in config.llm]
        problems = model_alias_problems(config, {})
        check_latch(config_mode=config.mode, live=config.live, agents=names, model_problems=problems, confirm=confirm)
        market = paper_feed(config, exchange_url).market()
        return live_step(config, store, market, job=job, confirm=confirm, exchange_url=exchange_url, cache=cache)
    market = paper_feed(config, exchange_url).market()
    return trade_step(config, store, job=job, market=market, cache=cache)
