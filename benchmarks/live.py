"""Live trading benchmarks: decision-to-wire latency of entry orders, and the cost of reconciling an account.

    .venv/bin/python benchmarks/live.py                   # full sizes (about a minute)
    .venv/bin/python benchmarks/live.py --quick           # smoke-run sizes (a few seconds after the imports)
    .venv/bin/python benchmarks/live.py --json PATH       # results elsewhere than benchmarks/live_results.json
    .venv/bin/python benchmarks/live.py --strict          # exit status 1 when a target is missed

The exchange is the loopback Binance USDⓈ-M server of `tests/servers/binance_futures.py`, a TEST FIXTURE: the real
ccxt `binanceusdm` client speaks HTTP to it on 127.0.0.1, its matching engine and accounts are modelled, and it runs
in a thread of this process (so client and server share one interpreter and its GIL, which a real exchange does
not; the network of a real exchange, tens of milliseconds from most places, is not part of these figures). The
benchmark wraps the fixture in a subclass (`BenchExchange`), leaving the fixture's file untouched: its request
handler stamps `time.perf_counter()` when a `POST /fapi/v1/order` arrives (after the request line and headers are
parsed, before the body is read), and it can list extra perpetuals (below).

1. Decision to wire (target: p95 <= 50 ms). One account with a real `LiveBroker` on BTC/USDT and ETH/USDT (the
   fixture's perpetuals; prices: the bundled real sample's last closes) under the real `Driver` and `RiskEngine`.
   Each timed unit starts at `Driver.act` with one approved-to-be entry decision (long or short, 5% of equity at
   2x, stop-loss and take-profit 3% away) and ends when the server receives the entry's `POST /fapi/v1/order`:
   the risk review, the order, the broker's sizing, precision, minimums and caps, and ccxt's request building,
   signing and sending. Before each entry the bar is reconciled (`LiveBroker.settle`, untimed), and after it the
   position is closed by a CLOSE decision (its decision-to-wire time, which includes cancelling the two exit
   orders first, is reported without a target). The first entry of each symbol also sets its margin mode and
   leverage (two requests before the order); those are reported apart as setup and left out of the
   steady-state percentiles. The very first entry of the process also pays a one-time load of the risk rules'
   numba cache (`RiskEngine.review`; numba imports scipy for its BLAS check on that first load): it is the first
   setup figure. The account caps are raised to let 200 entries through in a minute (the default
   is 6 per minute).
2. Reconciliation (target: <= 250 ms). One account holding 10 positions, with 20 open orders (a reduce-only
   STOP_MARKET and TAKE_PROFIT_MARKET per position, resting on the exchange) and 500 fills (50 per symbol:
   round trips opened and closed, then two fills that leave the position open; half the symbols long, half
   short; fills spread one minute apart, the newest a few seconds ago). The fixture lists only BTCUSDT and
   ETHUSDT, and the sample has bars for six coins but funding for two, so the other 8 perpetuals are SYNTHETIC:
   `SYNAUSDT`..`SYNHUSDT` copy BTCUSDT's exchangeInfo rules and trade at the fixture's default price for a
   symbol without sample data (1000 USDT); no sample data stands behind them. Reconciliation reads no prices,
   so its cost depends on the number of symbols, fills and requests, which are the real ones. The fills are made
   on the server by the fixture's `manual_order` (no HTTP at setup) and carry Arena's client order ids. Timed:
   `LiveBroker.settle` (sync: trades per symbol, funding, stale exits; compare: positions and wallet), on a
   ccxt client whose markets and leverage brackets are already loaded (one untimed settle first), three ways:
   - cold, orders known: a broker whose committed state (cursor before the fills, the 500 orders, the 20 exit
     orders) lacks the fills, as after a bar whose commit was lost; it imports the 500 fills;
   - cold, orders unknown: the same without the order map, as after a crash before the orders were committed,
     or for trades made by hand: the orders' client ids (their purpose) are learned with one `fetchOrders`
     (`GET /fapi/v1/allOrders`) per symbol;
   - warm: the same account again with nothing new, the cost of every bar.
   Each cold run checks that the 500 fills were booked, the 10 positions match and nothing differs (no fault).
   A first bar after a restart (`restore()`, which also lists resting exit orders per symbol) is reported
   without a target, and so is opening a fresh client (markets, as `live_step` does on each invocation).

Verdicts: the p95 of the steady-state entries for (1); the median of the repeats of each reconciliation for (2).
Results go to `--json` with every timing; the figures belong to the run that wrote the file.
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib and its loopback server
    sys.path.insert(0, str(ROOT))

from benchmarks._common import aligned_table, command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402
from tests.servers.binance_futures import BinanceFuturesServer, futures_client  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "live_results.json"
TARGETS = {"decision_to_wire_p95_ms": 50.0, "reconcile_ms": 250.0}
SIZES: dict[str, dict[str, Any]] = {
    "full": {"entries": 200, "positions": 10, "fills": 500, "cold_repeats": 5, "warm_repeats": 30},
    "quick": {"entries": 10, "positions": 10, "fills": 40, "cold_repeats": 1, "warm_repeats": 3},
}
KEY, SECRET = "bench-key-5d2c9a", "bench-secret-71e0b4"
RUN_ID, AGENT = "bench-live", "bot"
ORDER_PATH = "/fapi/v1/order"
HOUR_NS = 3_600_000_000_000
MINUTE_MS = 60_000
REAL_PERPS = ("BTCUSDT", "ETHUSDT")


class BenchExchange(BinanceFuturesServer):
    """The loopback FIXTURE, plus: a receive stamp for each order request, and synthetic clones of BTCUSDT."""

    def __init__(self, accounts: dict[str, tuple[str, float | str | Decimal]], synthetic: tuple[str, ...] = ()) -> None:
        self.synthetic = synthetic
        self.order_received: list[float] = []  # perf_counter() at each POST /fapi/v1/order, in arrival order
        super().__init__(accounts)

    def _fapi_exchange_info(self) -> dict[str, Any]:
        info = super()._fapi_exchange_info()
        template = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        for name in self.synthetic:
            clone = copy.deepcopy(template)
            clone.update(symbol=name, pair=name, baseAsset=name.removesuffix("USDT"))
            info["symbols"].append(clone)
        return info

    def _handler_class(self) -> Any:
        base = super()._handler_class()
        server = self

        class Stamped(base):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] == ORDER_PATH:
                    server.order_received.append(time.perf_counter())
                super().do_POST()

        return Stamped


def _connect(server: BinanceFuturesServer, settings: Any) -> Any:
    from arena_lib.execution.venue import Venue

    client = futures_client(server, KEY, SECRET, options={"warnOnFetchOpenOrdersWithoutSymbol": False})
    return Venue(client, settings, (KEY, SECRET), sleep=lambda s: None)


def _ms(xs: list[float]) -> list[float]:
    return [x * 1000.0 for x in xs]


def _summary(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {
        "n": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
    }


# -- 1. decision to wire ------------------------------------------------------------------------------------------
def bench_decision_to_wire(n_entries: int) -> dict[str, Any]:
    """Entries through `Driver.act` -> `LiveBroker.place` -> ccxt -> the server's receipt (module docstring, 1)."""
    import pandas as pd

    from arena_lib.agents.baselines import NoOpAgent
    from arena_lib.core.config import BacktestConfig, RiskLimits
    from arena_lib.core.types import Action, Decision
    from arena_lib.data.history import load_market
    from arena_lib.data.tape import tape_upto
    from arena_lib.engine.driver import Account, Driver
    from arena_lib.engine.portfolio import Portfolio
    from arena_lib.execution.live_broker import LiveBroker
    from arena_lib.execution.settings import LiveCaps, LiveSettings

    symbols = ("BTC/USDT", "ETH/USDT")
    end = pd.Timestamp("2025-03-01", tz="UTC")
    market = load_market(list(symbols), "1h", (end - pd.Timedelta(hours=48)).isoformat(), end.isoformat())
    tape = tape_upto(market, market.n_bars - 1)
    config = BacktestConfig(symbols=symbols, risk=RiskLimits(max_leverage=5))
    settings = LiveSettings(caps=LiveCaps(max_order_notional=1_000, max_orders_per_minute=1_000_000))
    cash0 = config.execution.initial_cash
    server = BenchExchange({KEY: (SECRET, cash0)})
    with server:
        marks = tape.close_marks()
        server.set_price("BTCUSDT", round(marks[0], 1))
        server.set_price("ETHUSDT", round(marks[1], 2))
        marks = [float(server.price("BTCUSDT")), float(server.price("ETHUSDT"))]
        venue = _connect(server, settings)
        for sym in symbols:  # as `connect_accounts` does: markets loaded, every symbol checked
            venue.market_symbol(sym)
        broker = LiveBroker(venue, config, symbols, run_id=RUN_ID, agent=AGENT, settings=settings)
        broker.begin(cash0)
        account = Account(NoOpAgent(), broker, Portfolio.start(cash0), equity=cash0)
        driver = Driver([account], config, tape, run_id=RUN_ID)
        risk = driver.risk

        def timed_act(decision: Decision, t_close: int) -> tuple[float, float, int]:
            """(decision to wire, the whole act, requests before the order) of one decision."""
            n_calls, n_orders = len(server.calls), len(server.order_received)
            gc.collect()
            t0 = time.perf_counter()
            driver.act(account, [decision], risk, t_close, marks)
            t1 = time.perf_counter()
            account.fills.clear()
            account.verdicts.clear()
            if len(server.order_received) <= n_orders:
                raise RuntimeError(f"no order reached the exchange for {decision}: {broker.rejections[-1:]}")
            paths = [(c.method, c.path) for c in server.calls[n_calls:]]
            before = paths.index(("POST", ORDER_PATH))
            return server.order_received[n_orders] - t0, t1 - t0, before

        entries: list[dict[str, Any]] = []
        closes: list[float] = []
        for i in range(n_entries):
            j = i % 2
            sym, mark = symbols[j], marks[j]
            long = (i // 2) % 2 == 0
            t_close = tape.last_close_ns + i * HOUR_NS
            account.portfolio = broker.settle(tape, account.portfolio, account.fills)  # the bar's reconciliation
            account.fills.clear()
            if broker.fault is not None:
                raise RuntimeError(f"reconciliation fault during the latency run: {broker.fault}")
            decision = Decision(
                sym,
                Action.ENTER_LONG if long else Action.ENTER_SHORT,
                size=0.05,
                leverage=2,
                stop_loss=mark * (0.97 if long else 1.03),
                take_profit=mark * (1.03 if long else 0.97),
            )
            wire, act, before = timed_act(decision, t_close)
            if sym not in account.portfolio.positions:
                raise RuntimeError(f"entry {i} on {sym} opened no position: {broker.rejections[-1:]}")
            entries.append(
                {"symbol": sym, "setup": i < len(symbols), "wire_s": wire, "act_s": act, "requests_before": before}
            )
            wire_close, _, _ = timed_act(Decision(sym, Action.CLOSE), t_close)
            closes.append(wire_close)
            if sym in account.portfolio.positions:
                raise RuntimeError(f"the close of entry {i} on {sym} left a position")
        account.portfolio = broker.settle(tape, account.portfolio, account.fills)
        fault = broker.fault
        rejections = [r.reason for r in broker.rejections]
    steady = [e for e in entries if not e["setup"]]
    setup = [e for e in entries if e["setup"]]
    summary = _summary(_ms([e["wire_s"] for e in steady]))
    target = TARGETS["decision_to_wire_p95_ms"]
    return {
        "symbols": list(symbols),
        "entries": len(entries),
        "steady": summary,
        "steady_act_total": _summary(_ms([e["act_s"] for e in steady])),
        "steady_requests_before_order": sorted({e["requests_before"] for e in steady}),
        "setup": [
            {
                "symbol": e["symbol"],
                "first_in_process": k == 0,
                "wire_ms": e["wire_s"] * 1000,
                "requests_before": e["requests_before"],
            }
            for k, e in enumerate(setup)
        ],
        "close": _summary(_ms(closes)),
        "wire_ms": [e["wire_s"] * 1000 for e in entries],
        "fault": fault,
        "rejections": rejections,
        "target_ms": target,
        "pass": summary["p95_ms"] <= target and fault is None,
    }


# -- 2. reconciliation --------------------------------------------------------------------------------------------
def _fill_plan(n_positions: int, per_symbol: int) -> list[tuple[int, int, str]]:
    """(round, symbol index, side) of every fill, in time order: round trips, then two fills that stay open."""
    plan = []
    for r in range(per_symbol):
        for k in range(n_positions):
            way = "BUY" if k % 2 == 0 else "SELL"  # even symbols end long, odd ones short
            other = "SELL" if way == "BUY" else "BUY"
            side = way if r >= per_symbol - 2 or r % 2 == 0 else other
            plan.append((r, k, side))
    return plan


def bench_reconcile(n_positions: int, n_fills: int, cold_repeats: int, warm_repeats: int) -> dict[str, Any]:
    """`LiveBroker.settle` on an account with positions, resting exits and fills (module docstring, 2)."""
    from arena_lib.core.config import BacktestConfig
    from arena_lib.data.tape import MarketTape
    from arena_lib.engine.portfolio import Portfolio
    from arena_lib.execution.client_ids import Purpose, client_order_id
    from arena_lib.execution.live_broker import LiveBroker
    from arena_lib.execution.settings import LiveSettings

    if n_positions < len(REAL_PERPS) or n_fills % n_positions or n_fills // n_positions < 2:
        raise ValueError("need >= 2 positions and at least 2 fills per position, the same number for each")
    per_symbol = n_fills // n_positions
    synthetic = tuple(f"SYN{chr(ord('A') + k)}USDT" for k in range(n_positions - len(REAL_PERPS)))
    ids = (*REAL_PERPS, *synthetic)
    symbols = tuple(f"{s.removesuffix('USDT')}/USDT" for s in ids)
    config = BacktestConfig(symbols=symbols)
    settings = LiveSettings()
    cash0 = 1_000_000.0
    server = BenchExchange({KEY: (SECRET, cash0)}, synthetic=synthetic)
    with server:
        prices = [float(server.price(s)) for s in ids]
        qty = {
            s: Decimal("0.002") if s == "BTCUSDT" else Decimal("0.05") if s == "ETHUSDT" else Decimal("0.2")
            for s in ids
        }
        venue = _connect(server, settings)
        for sym in symbols:
            venue.market_symbol(sym)
        total = len(_fill_plan(n_positions, per_symbol))
        now_ms = int(time.time() * 1000)
        t_begin = now_ms - MINUTE_MS * (total + 2)
        clock = [t_begin]
        broker = LiveBroker(
            venue, config, symbols, run_id=RUN_ID, agent=AGENT, settings=settings, wall_ms=lambda: clock[0]
        )
        broker.begin(cash0)

        # the exchange's side: 500 fills, one minute apart, made on the server (no HTTP) with Arena's client ids
        server.clock_ms = lambda: clock[0]
        t0 = time.perf_counter()
        bar0 = int(t_begin) * 1_000_000
        for n, (r, k, side) in enumerate(_fill_plan(n_positions, per_symbol)):
            clock[0] = t_begin + MINUTE_MS * (n + 1)
            opening = r >= per_symbol - 2 or r % 2 == 0
            cid = client_order_id(
                RUN_ID, AGENT, bar0 + r * HOUR_NS, symbols[k], Purpose.ENTRY if opening else Purpose.CLOSE
            )
            if r == per_symbol - 1:  # the second fill that stays open: another bar's entry
                cid = client_order_id(RUN_ID, AGENT, bar0 + (r + per_symbol) * HOUR_NS, symbols[k], Purpose.ENTRY)
            server.manual_order(KEY, ids[k], side, qty[ids[k]], client_id=cid)
        server.clock_ms = lambda: int(time.time() * 1000)
        # 20 resting exit orders: a reduce-only stop-loss and take-profit per position, sent through ccxt
        for k, sym in enumerate(symbols):
            direction = 1 if k % 2 == 0 else -1
            side = "sell" if direction > 0 else "buy"
            amount = float(2 * qty[ids[k]])
            for purpose, kind, away in (
                (Purpose.STOP, "STOP_MARKET", -0.03),
                (Purpose.TAKE, "TAKE_PROFIT_MARKET", 0.03),
            ):
                cid = client_order_id(RUN_ID, AGENT, bar0 + 2 * per_symbol * HOUR_NS, sym, purpose)
                trigger = float(
                    venue.exchange.price_to_precision(venue.market_symbol(sym), prices[k] * (1 + direction * away))
                )
                venue.submit(sym, kind, side, amount, cid, {"stopPrice": trigger, "reduceOnly": True})
                broker.exits.setdefault(sym, {})[purpose.value] = cid
        setup_s = time.perf_counter() - t0
        state = broker.state()
        orders = {str(o["orderId"]): str(o["clientOrderId"]) for o in server.orders(KEY)}
        exchange = server.account_state(KEY)
        open_orders = len(server.algo_orders(KEY))
        if len(exchange["positions"]) != n_positions or len(server.trades(KEY)) != n_fills:
            raise RuntimeError(
                f"the exchange holds {len(exchange['positions'])} positions and {len(server.trades(KEY))} fills"
            )

        tape = MarketTape(symbols, "1h", capacity=4)
        hour_ns = (now_ms // 3_600_000) * HOUR_NS
        row = np.array([[p, p, p, p, 1.0] for p in prices])
        tape.append_aligned(hour_ns - HOUR_NS, row)

        def fresh(with_orders: bool) -> LiveBroker:
            b = LiveBroker(venue, config, symbols, run_id=RUN_ID, agent=AGENT, settings=settings)
            b.load_state(state | {"orders": orders if with_orders else {}})
            return b

        def settle(b: LiveBroker, pf: Portfolio, expect_fills: int) -> tuple[float, Portfolio, int]:
            fills: list[Any] = []
            n_calls = len(server.calls)
            gc.collect()
            start = time.perf_counter()
            pf = b.settle(tape, pf, fills)
            elapsed = time.perf_counter() - start
            requests = len(server.calls) - n_calls
            if b.fault is not None:
                raise RuntimeError(f"the reconciliation found a difference: {b.fault}")
            if len(fills) != expect_fills or len(pf.positions) != n_positions:
                raise RuntimeError(f"booked {len(fills)} fills and {len(pf.positions)} positions")
            return elapsed, pf, requests

        first_s, _, _ = settle(fresh(True), Portfolio.start(cash0), n_fills)  # loads the leverage brackets (once)
        cold_known, cold_unknown = [], []
        requests: dict[str, int] = {}
        pf = Portfolio.start(cash0)
        b = fresh(True)
        for _ in range(cold_repeats):
            b = fresh(True)
            dt, pf, requests["cold_orders_known"] = settle(b, Portfolio.start(cash0), n_fills)
            cold_known.append(dt)
            dt, _, requests["cold_orders_unknown"] = settle(fresh(False), Portfolio.start(cash0), n_fills)
            cold_unknown.append(dt)
        warm = []
        for _ in range(warm_repeats):
            dt, pf, requests["warm"] = settle(b, pf, 0)
            warm.append(dt)
        restart = fresh(True)
        restart.load_state(b.state())
        restart.restore([])
        restart_s, _, requests["first_bar_after_restart"] = settle(restart, pf, 0)

        t0 = time.perf_counter()
        venue2 = _connect(server, settings)
        for sym in symbols:
            venue2.market_symbol(sym)
        connect_s = time.perf_counter() - t0
        ledger_wallet = pf.cash + sum(p.margin for p in pf.positions.values())
        exchange_wallet = float(exchange["walletBalance"]) if "walletBalance" in exchange else None
    target = TARGETS["reconcile_ms"]
    out: dict[str, Any] = {
        "symbols": list(symbols),
        "synthetic_perps": list(synthetic),
        "positions": n_positions,
        "open_orders": open_orders,
        "fills": n_fills,
        "setup_s": setup_s,
        "first_settle_in_process_ms": first_s * 1000,
        "requests": requests,
        "first_bar_after_restart_ms": restart_s * 1000,
        "fresh_client_connect_ms": connect_s * 1000,
        "ledger_wallet": ledger_wallet,
        "exchange_wallet": exchange_wallet,
        "target_ms": target,
    }
    for name, times in (("cold_orders_known", cold_known), ("cold_orders_unknown", cold_unknown), ("warm", warm)):
        ms = _ms(times)
        median = statistics.median(ms)
        out[name] = {"all_ms": ms, "best_ms": min(ms), "median_ms": median, "max_ms": max(ms), "pass": median <= target}
    return out


# -- reporting ----------------------------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(results: dict[str, Any]) -> str:
    lat, rec = results["decision_to_wire"], results["reconcile"]
    s, c = lat["steady"], lat["close"]
    rows = [
        [
            f"decision to wire, entry (steady, n={s['n']})",
            f"p50 {s['p50_ms']:.2f} / p95 {s['p95_ms']:.2f} / max {s['max_ms']:.2f} ms",
            f"p95 <= {lat['target_ms']:g} ms",
            _verdict(lat["pass"]),
        ]
    ]
    for e in lat["setup"]:
        what = "first in process: numba load, " if e["first_in_process"] else ""
        rows.append(
            [
                f"  first entry {e['symbol']} ({what}margin mode, leverage)",
                f"{e['wire_ms']:.2f} ms ({e['requests_before']} requests before)",
                "-",
                "info",
            ]
        )
    rows.append(
        [
            f"  close (cancels 2 exits first, n={c['n']})",
            f"p50 {c['p50_ms']:.2f} / p95 {c['p95_ms']:.2f} / max {c['max_ms']:.2f} ms",
            "-",
            "info",
        ]
    )
    t = lat["steady_act_total"]
    rows.append(
        ["  whole act: entry + sync + 2 exits", f"p50 {t['p50_ms']:.2f} / p95 {t['p95_ms']:.2f} ms", "-", "info"]
    )
    label = f"{rec['positions']} positions, {rec['open_orders']} open orders, {rec['fills']} fills"
    for key, what in (
        ("cold_orders_known", "reconcile cold, orders known"),
        ("cold_orders_unknown", "reconcile cold, orders looked up"),
        ("warm", "reconcile warm (every bar)"),
    ):
        r = rec[key]
        rows.append(
            [
                f"{what} ({rec['requests'][key]} requests)",
                f"median {r['median_ms']:.1f} / best {r['best_ms']:.1f} / max {r['max_ms']:.1f} ms",
                f"<= {rec['target_ms']:g} ms",
                _verdict(r["pass"]),
            ]
        )
    rows.append(
        [
            f"  first bar after a restart ({rec['requests']['first_bar_after_restart']} requests)",
            f"{rec['first_bar_after_restart_ms']:.1f} ms",
            "-",
            "info",
        ]
    )
    rows.append(["  fresh client: load markets", f"{rec['fresh_client_connect_ms']:.1f} ms", "-", "info"])
    head = (
        "loopback Binance USDⓈ-M FIXTURE (tests/servers/binance_futures.py) in this process; "
        f"reconciliation account: {label}, {len(rec['synthetic_perps'])} of its perps synthetic\n"
    )
    return head + aligned_table(["benchmark", "measured", "target", "verdict"], rows)


def environment() -> dict[str, Any]:
    import ccxt

    return _environment(ccxt=ccxt.__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUTPUT, dest="output", help="where to write results")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    started = time.perf_counter()
    results = {
        "decision_to_wire": bench_decision_to_wire(int(sizes["entries"])),
        "reconcile": bench_reconcile(
            int(sizes["positions"]), int(sizes["fills"]), int(sizes["cold_repeats"]), int(sizes["warm_repeats"])
        ),
    }
    rec = results["reconcile"]
    passed = bool(
        results["decision_to_wire"]["pass"]
        and all(rec[k]["pass"] for k in ("cold_orders_known", "cold_orders_unknown", "warm"))
    )
    payload = {
        "mode": mode,
        "sizes": sizes,
        "command": command_line("benchmarks/live.py", argv),
        "environment": environment(),
        "targets": TARGETS,
        "results": results,
        "all_passed": passed,
        "total_s": time.perf_counter() - started,
    }
    return write_results(payload, args.output, render(results), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
