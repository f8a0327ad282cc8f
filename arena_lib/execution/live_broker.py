"""`LiveBroker`: the engine's `Broker` for one isolated account on a real exchange, through ccxt.

The agents, the RiskEngine and the driver are the same as in a backtest; only this broker differs:

- `settle` (before every bar) reconciles: it imports every trade and funding payment the exchange made since the
  last sync (`execution.fills`), cancels exit orders left over from positions that closed another way, and compares
  positions and the wallet with the ledger (`execution.reconcile`). A difference nothing explains sets `fault`;
  the driver then halts the account with that reason.
- `place` (for each approved order) sizes the entry with the engine's rules, applies the exchange's precision and
  minimums and the account's caps (`LiveCaps`) before anything is sent, sets leverage and margin mode, sends a
  market order with a deterministic client id, books its fills, then puts the stop-loss and take-profit on the
  exchange as reduce-only trigger orders. Everything the exchange refuses is a `FillRejection` with its message.

The broker keeps what it must remember between bars (trade and funding cursors, its orders, its exit orders, the
wallet baseline, the entries of the last minute, the day's starting equity) in `state()`, which the arena commits
with each bar and hands back through `load_state` on a restart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Action, Fill, FillKind, Order
from arena_lib.data.tape import MarketTape
from arena_lib.engine import rules
from arena_lib.engine.broker import FillRejection
from arena_lib.engine.portfolio import Portfolio, apply_funding, charge_cash, equity, gross_notional
from arena_lib.execution import reconcile
from arena_lib.execution.client_ids import Purpose, client_order_id, purpose_of
from arena_lib.execution.fills import EXCHANGE, MANUAL, ORDER, RECOVERED, ExchangeTrade, apply_trade
from arena_lib.execution.settings import LiveSettings
from arena_lib.execution.venue import ExchangeRejection, Venue

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
_EXIT_KIND = {Purpose.STOP: FillKind.STOP_LOSS, Purpose.TAKE: FillKind.TAKE_PROFIT}
_PAGE = 1000  # trades per request (Binance's maximum)
_LOOKBACK_MS = 60_000  # re-read trades this far before the newest one imported (exchanges index by time)


class LiveBroker:
    """Execution for one account on an exchange: a `Broker` whose fills are the exchange's trades."""

    def __init__(
        self,
        venue: Venue,
        config: BacktestConfig,
        symbols: Sequence[str],
        *,
        run_id: str,
        agent: str,
        settings: LiveSettings,
        wall_ms: Any = None,
    ) -> None:
        self.venue = venue
        self.config = config
        self.symbols = tuple(symbols)
        self.run_id, self.agent = run_id, agent
        self.account_id = f"{run_id}/{agent}"
        self.settings = settings
        self.rejections: list[FillRejection] = []
        self.fault: str | None = None  # a reconciliation difference nothing explains: the driver halts the account
        self.notices: list[str] = []  # what the last sync imported or repaired, for the operator
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._mmr = config.execution.maintenance_margin_rate
        self._leverage: dict[str, int] = {}
        self._margin_set: set[str] = set()
        self._recovering = False
        self._recover_bar: int | None = None
        self._client_ids: dict[str, str] = {}  # exchange order id -> client id, learned from fetchOrders
        self._bar_ns = 0
        # committed with each bar (`state`)
        self.trade_cursor_ms: int | None = None
        self.seen_trades: dict[str, int] = {}  # trade id -> exchange time (ms), pruned behind the cursor
        self.funding_cursor_ms: int | None = None
        self.seen_funding: dict[str, int] = {}
        self.orders: dict[str, str] = {}  # exchange order id -> our client id
        self.exits: dict[str, dict[str, str]] = {}  # symbol -> purpose letter -> client id of a resting exit order
        self.wallet_offset: float | None = None  # exchange wallet - ledger wallet at the run's start
        self.entries_sent_ms: list[int] = []
        self.day: int | None = None
        self.day_start_equity = math.nan

    # -- the Broker protocol --------------------------------------------------------------------------------------
    def settle(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        """Reconcile before the bar: import what the exchange did, then compare; a difference sets `fault`."""
        if self._recovering:  # lookups before sending cover the first bar played after the restart only
            if self._recover_bar is None:
                self._recover_bar = tape.last_close_ns
            elif tape.last_close_ns != self._recover_bar:
                self._recovering = False
        self._bar_ns = tape.last_close_ns
        self.notices = []
        self.fault = None  # judged afresh each bar: an operator's reset holds once the two agree again
        if self.wallet_offset is None:
            self.wallet_offset = self.venue.wallet_balance() - ledger_wallet(pf)
        pf = self.sync(pf, fills)
        if self._recovering:
            self._adopt_resting_exits(pf)
        report = self.compare(pf)
        if report.differences:
            self.fault = "reconciliation: " + "; ".join(report.differences)
            log.error("%s: %s", self.account_id, self.fault)
        self._track_day(pf, tape)
        return pf

    def place(self, order: Order, tape: MarketTape, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        """Send an approved order now (live orders never wait for the next open) and book what it filled."""
        self._bar_ns = tape.last_close_ns
        sym = order.symbol
        try:
            self.venue.market_symbol(sym)
        except ExchangeRejection as exc:
            return self._reject(order, str(exc), pf)
        pos = pf.positions.get(sym)
        if pos is not None and (order.action is Action.CLOSE or order.direction != pos.direction):
            pf = self.close(pf, sym, order.order_id, order.created_at, Purpose.CLOSE, fills)
        if order.direction == 0 or sym in pf.positions:
            return pf
        return self._enter(order, pf, marks, fills)

    def pending_orders(self) -> list[Order]:
        return []  # live orders never wait for a bar: exits rest on the exchange, in `state()`

    def has_pending(self) -> bool:
        return True  # the exchange may hold fills the ledger has not seen (a stop, a manual trade): always settle

    def restore(self, pending: Sequence[Order]) -> None:
        """After a restart: orders of the first bar played next may already be on the exchange; look them up."""
        self._recovering = True
        self._recover_bar = None

    def begin(self, ledger_cash: float) -> None:
        """Start a new run on this account: history before now is not ours, and the wallet's baseline is now.

        Trades and funding the exchange reports up to now are marked seen, so a run never imports the account's
        past; the wallet beyond `ledger_cash` is set aside (the run trades its configured budget). Positions are not
        set aside: an account that is not flat fails the first reconciliation and halts.
        """
        v = self.venue
        now = self._wall_ms()
        for sym in self.symbols:
            for r in v.call(f"fetch trades {sym}", v.exchange.fetch_my_trades, v.market_symbol(sym), now - DAY_MS):
                self.seen_trades[str(r["id"])] = int(r.get("timestamp") or now)
        if v.exchange.has.get("fetchFundingHistory"):
            for r in v.call("fetch funding", v.exchange.fetch_funding_history, None, now - DAY_MS):
                self.seen_funding[str(r.get("id"))] = int(r.get("timestamp") or now)
        self.trade_cursor_ms = self.funding_cursor_ms = now
        self.wallet_offset = v.wallet_balance() - ledger_cash

    # -- state committed with each bar ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "trade_cursor_ms": self.trade_cursor_ms,
            "seen_trades": _recent(self.seen_trades, self.trade_cursor_ms),
            "funding_cursor_ms": self.funding_cursor_ms,
            "seen_funding": _recent(self.seen_funding, self.funding_cursor_ms),
            "orders": dict(self.orders),
            "exits": {s: dict(e) for s, e in self.exits.items()},
            "wallet_offset": self.wallet_offset,
            "entries_sent_ms": list(self.entries_sent_ms),
            "day": self.day,
            "day_start_equity": None if math.isnan(self.day_start_equity) else self.day_start_equity,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.trade_cursor_ms = state.get("trade_cursor_ms")
        self.seen_trades = dict(state.get("seen_trades") or {})
        self.funding_cursor_ms = state.get("funding_cursor_ms")
        self.seen_funding = dict(state.get("seen_funding") or {})
        self.orders = dict(state.get("orders") or {})
        self.exits = {s: dict(e) for s, e in (state.get("exits") or {}).items()}
        self.wallet_offset = state.get("wallet_offset")
        self.entries_sent_ms = list(state.get("entries_sent_ms") or ())
        self.day = state.get("day")
        dse = state.get("day_start_equity")
        self.day_start_equity = math.nan if dse is None else float(dse)

    # -- reconciliation -------------------------------------------------------------------------------------------
    def sync(self, pf: Portfolio, fills: list[Fill], *, source: str = EXCHANGE) -> Portfolio:
        """Import the trades and funding payments the ledger lacks; cancel exits of positions that closed."""
        trades = self._new_trades()
        self._learn_client_ids(trades)
        for trade in trades:
            pf = self._book(pf, trade, fills, source)
        pf = self._import_funding(pf)
        self._cancel_stale_exits(pf)
        return pf

    def compare(self, pf: Portfolio) -> reconcile.Report:
        """Positions and wallet on the exchange against the ledger, after `sync`."""
        v = self.venue
        msyms = [v.market_symbol(s) for s in self.symbols]
        raw = v.call("fetch positions", v.exchange.fetch_positions, msyms)
        by_msym = {m: s for s, m in zip(self.symbols, msyms, strict=True)}
        exchange_positions: dict[str, float] = {}
        for p in raw:
            sym = by_msym.get(p.get("symbol"))
            contracts = float(p.get("contracts") or 0.0) * float(p.get("contractSize") or 1.0)
            if sym is None or contracts == 0.0:
                continue
            exchange_positions[sym] = contracts if p.get("side") != "short" else -contracts
        steps = {s: self._amount_step(s) for s in self.symbols}
        wallet = v.wallet_balance() - (self.wallet_offset or 0.0)
        return reconcile.compare(
            {s: p.quantity for s, p in pf.positions.items()},
            exchange_positions,
            ledger_wallet(pf),
            wallet,
            steps=steps,
            tolerance=self.settings.balance_tolerance,
        )

    def _new_trades(self) -> list[ExchangeTrade]:
        v = self.venue
        since = None if self.trade_cursor_ms is None else self.trade_cursor_ms - _LOOKBACK_MS
        out: list[ExchangeTrade] = []
        for sym in self.symbols:
            for r in self._fetch_trades(sym, since):
                tid = str(r["id"])
                if tid in self.seen_trades:
                    continue
                fee = r.get("fee") or {}
                out.append(
                    ExchangeTrade(
                        trade_id=tid,
                        order_id=str(r.get("order")),
                        symbol=sym,
                        side=1 if r["side"] == "buy" else -1,
                        quantity=float(r["amount"]) * float(v.market(sym).get("contractSize") or 1.0),
                        price=float(r["price"]),
                        fee=float(fee.get("cost") or 0.0),
                        timestamp=int(r["timestamp"]) * 1_000_000,
                    )
                )
        out.sort(key=lambda t: (t.timestamp, t.trade_id))
        return out

    def _fetch_trades(self, sym: str, since: int | None) -> list[dict[str, Any]]:
        """Every trade of `sym` since `since`, page by page (an exchange answers at most `_PAGE` at a time)."""
        v = self.venue
        msym = v.market_symbol(sym)
        rows: dict[str, dict[str, Any]] = {}
        while True:
            page = v.call(f"fetch trades {sym}", v.exchange.fetch_my_trades, msym, since, _PAGE)
            fresh = [r for r in page if str(r["id"]) not in rows]
            rows.update((str(r["id"]), r) for r in page)
            if len(page) < _PAGE or not fresh or since is None:
                return list(rows.values())
            since = max(int(r["timestamp"]) for r in page)  # inclusive: the ids dedupe the overlap

    def _learn_client_ids(self, trades: Sequence[ExchangeTrade]) -> None:
        """The client ids of orders behind new trades, one `fetchOrders` per symbol rather than one look-up per
        trade (a restart after many fills, or a busy manual account)."""
        v = self.venue
        if not v.exchange.has.get("fetchOrders"):
            return
        unknown: dict[str, int] = {}
        for t in trades:
            if t.order_id not in self.orders:
                unknown[t.symbol] = min(unknown.get(t.symbol, t.timestamp), t.timestamp)
        for sym, first_ns in unknown.items():
            try:
                orders = v.call(
                    f"fetch orders {sym}",
                    v.exchange.fetch_orders,
                    v.market_symbol(sym),
                    first_ns // 1_000_000 - _LOOKBACK_MS,
                )
            except ExchangeRejection:
                continue  # the per-trade look-up still runs
            for o in orders:
                if o.get("id") is not None and o.get("clientOrderId"):
                    self._client_ids[str(o["id"])] = str(o["clientOrderId"])

    def _book(self, pf: Portfolio, trade: ExchangeTrade, fills: list[Fill], source: str) -> Portfolio:
        """One trade into the ledger, with the purpose of the order that made it."""
        cid = self.orders.get(trade.order_id)
        known = cid is not None
        if cid is None:
            cid = self._client_id_of(trade)
            self.orders[trade.order_id] = cid
        purpose = purpose_of(cid)
        if not known and purpose is not None and purpose not in _EXIT_KIND:
            source = RECOVERED  # one of our orders this process never saw: sent before a restart
        if purpose is None:
            src, kind, note = MANUAL, None, f"imported: an order Arena did not make (exchange order {trade.order_id})"
            if cid.startswith("autoclose") or cid.startswith("adl_autoclose"):
                src, kind, note = EXCHANGE, FillKind.LIQUIDATION, f"liquidated by the exchange ({cid})"
        elif purpose in _EXIT_KIND:
            src, kind, note = EXCHANGE, _EXIT_KIND[purpose], f"{_EXIT_KIND[purpose].value} filled on the exchange"
        else:
            src, kind, note = source, None, ""
            if src == RECOVERED:
                note = "recovered: sent before a restart and filled"
        lev = float(self._leverage.get(trade.symbol) or 1)
        pos = pf.positions.get(trade.symbol)
        if pos is not None:
            lev = pos.leverage
        pf, made = apply_trade(
            pf,
            trade,
            kind=kind,
            source=src,
            leverage=lev,
            maintenance_margin_rate=self._mmr,
            order_id=cid,
            note=note,
        )
        fills.extend(made)
        self.seen_trades[trade.trade_id] = trade.timestamp // 1_000_000
        self.trade_cursor_ms = max(self.trade_cursor_ms or 0, trade.timestamp // 1_000_000)
        if src != ORDER:
            self.notices.append(
                f"{trade.symbol}: {note or 'imported'} ({trade.side * trade.quantity:+g} @ {trade.price:g})"
            )
        return pf

    def _client_id_of(self, trade: ExchangeTrade) -> str:
        """The client id of the order behind a trade we have not seen: ours (an exit that fired, an order sent
        before a restart) or someone else's. A trigger order that fires becomes a market order carrying the
        trigger order's client id."""
        learned = self._client_ids.get(trade.order_id)
        if learned is not None:
            return learned
        v = self.venue
        try:
            order = v.call("look up order", v.exchange.fetch_order, trade.order_id, v.market_symbol(trade.symbol))
        except ExchangeRejection:
            return f"unknown-{trade.order_id}"
        return str(order.get("clientOrderId") or f"unknown-{trade.order_id}")

    def _import_funding(self, pf: Portfolio) -> Portfolio:
        v = self.venue
        if not v.exchange.has.get("fetchFundingHistory"):
            return pf
        since = None if self.funding_cursor_ms is None else self.funding_cursor_ms - _LOOKBACK_MS
        by_msym = {v.market_symbol(s): s for s in self.symbols}
        rows = v.call("fetch funding", v.exchange.fetch_funding_history, None, since)
        for r in sorted(rows, key=lambda r: (r.get("timestamp") or 0, str(r.get("id")))):
            fid = str(r.get("id"))
            sym = by_msym.get(r.get("symbol"))
            if sym is None or fid in self.seen_funding:
                continue
            payment = -float(r.get("amount") or 0.0)  # the exchange reports income: received is positive
            pf = apply_funding(pf, sym, payment, self._mmr) if sym in pf.positions else charge_cash(pf, payment)
            self.seen_funding[fid] = int(r.get("timestamp") or 0)
            self.funding_cursor_ms = max(self.funding_cursor_ms or 0, int(r.get("timestamp") or 0))
        return pf

    def _adopt_resting_exits(self, pf: Portfolio) -> None:
        """After a restart: our trigger orders resting on the exchange that the ledger never committed (sent just
        before a crash) protect a held position, or are cancelled so they can never touch a later one."""
        v = self.venue
        for sym in self.symbols:
            resting = v.call(
                "fetch open exits", v.exchange.fetch_open_orders, v.market_symbol(sym), None, None, {"trigger": True}
            )
            for o in resting:
                cid = str(o.get("clientOrderId") or "")
                purpose = purpose_of(cid)
                if purpose not in _EXIT_KIND or cid in self.exits.get(sym, {}).values():
                    continue
                if sym in pf.positions and purpose is not None:
                    self.exits.setdefault(sym, {})[purpose.value] = cid
                    self.notices.append(f"{sym}: adopted {purpose.name.lower()} order {cid} sent before a restart")
                else:
                    v.call(
                        "cancel orphan exit",
                        v.exchange.cancel_order,
                        None,
                        v.market_symbol(sym),
                        {"clientOrderId": cid, "trigger": True},
                    )

    def _cancel_stale_exits(self, pf: Portfolio) -> None:
        """Exit orders whose position closed another way (the other exit fired, a close, a manual trade)."""
        for sym in [s for s in self.exits if s not in pf.positions]:
            self._cancel_exits(sym)

    def _cancel_exits(self, sym: str) -> None:
        import ccxt

        v = self.venue
        for cid in list(self.exits.get(sym, {}).values()):
            try:
                v.call(
                    "cancel exit",
                    v.exchange.cancel_order,
                    None,
                    v.market_symbol(sym),
                    {"clientOrderId": cid, "trigger": True},
                )
            except ExchangeRejection as exc:
                if not exc.caused_by(ccxt.OrderNotFound):
                    raise
        self.exits.pop(sym, None)

    # -- orders ---------------------------------------------------------------------------------------------------
    def close(
        self, pf: Portfolio, sym: str, order_key: str, bar_ns: int, purpose: Purpose, fills: list[Fill]
    ) -> Portfolio:
        """Close the whole position with a reduce-only market order, after cancelling its exits."""
        pos = pf.positions[sym]
        self._cancel_exits(sym)
        cid = client_order_id(self.run_id, self.agent, bar_ns, sym, purpose)
        side = "sell" if pos.direction > 0 else "buy"
        amount = float(self.venue.exchange.amount_to_precision(self.venue.market_symbol(sym), abs(pos.quantity)))
        try:
            self._send(sym, "market", side, amount, cid, {"reduceOnly": True})
        except ExchangeRejection as exc:
            self.rejections.append(FillRejection(order_key, sym, bar_ns, str(exc)))
            return pf
        return self.sync(pf, fills, source=ORDER)

    def flatten(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        """The kill switch: cancel every exit and close every position; each step is a fill or a rejection."""
        bar_ns = tape.last_close_ns
        pf = self.sync(pf, fills)
        for sym in list(pf.positions):
            pf = self.close(pf, sym, f"{self.account_id}/flatten/{sym}", bar_ns, Purpose.FLATTEN, fills)
        for sym in list(self.exits):
            self._cancel_exits(sym)
        return pf

    def _enter(self, order: Order, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        sym = order.symbol
        j = self.symbols.index(sym)
        price = marks[j]
        c = self.config
        lim = c.risk
        v = self.venue
        msym = v.market_symbol(sym)
        limits = v.market(sym).get("limits") or {}
        min_amount = float((limits.get("amount") or {}).get("min") or 0.0)
        min_cost = float((limits.get("cost") or {}).get("min") or 0.0)
        eq = equity(pf, self.symbols, marks)
        gross = gross_notional(pf, self.symbols, marks, exclude=sym)
        leverage = max(1, int(order.leverage))
        qty, flags = rules.entry_size(
            order.fraction,
            eq,
            pf.cash,
            price,
            float(leverage),
            c.costs.fee_rate,
            gross,
            lim.max_position_notional,
            lim.max_gross_exposure,
            lim.min_free_margin,
            min_cost,
            min_amount,
        )
        if qty <= 0.0:
            return self._reject(order, f"{v.exchange.id}: " + rules.describe_caps(flags, min_cost, min_amount), pf)
        caps = self.settings.caps
        notes = [rules.describe_caps(flags, min_cost, min_amount)] if flags else []
        if qty * price > caps.max_order_notional:
            qty = caps.max_order_notional / price
            notes.append(f"clamped to the account's max order notional {caps.max_order_notional:g}")
        why = self._cap_refusal(eq)
        if why:
            return self._reject(order, why, pf)
        amount = self._round_amount(msym, qty)
        if amount <= 0.0 or amount < min_amount:
            why = f"amount {qty:.8g} is below {v.exchange.id}'s minimum {min_amount:g} for {sym}"
            return self._reject(order, why, pf)
        if amount * price < min_cost:
            why = f"notional {amount * price:.2f} is below {v.exchange.id}'s minimum {min_cost:g} for {sym}"
            return self._reject(order, why, pf)
        try:
            self._prepare_symbol(sym, leverage)
            cid = client_order_id(self.run_id, self.agent, order.created_at, sym, Purpose.ENTRY)
            self._send(sym, "market", "buy" if order.direction > 0 else "sell", amount, cid)
        except ExchangeRejection as exc:
            return self._reject(order, str(exc), pf)
        self.entries_sent_ms.append(self._wall_ms())
        pf = self.sync(pf, fills, source=RECOVERED if self._recovering else ORDER)
        pos = pf.positions.get(sym)
        if pos is None:
            return pf
        positions = dict(pf.positions)
        positions[sym] = replace(pos, stop_loss=order.stop_loss, take_profit=order.take_profit)
        pf = replace(pf, positions=positions)
        self._protect(order, abs(pos.quantity), pos.direction)
        if notes:
            log.info("%s %s entry: %s", self.account_id, sym, "; ".join(notes))
        return pf

    def _protect(self, order: Order, quantity: float, direction: int) -> None:
        """Stop-loss and take-profit on the exchange, reduce-only, right after the entry filled."""
        sym = order.symbol
        v = self.venue
        msym = v.market_symbol(sym)
        side = "sell" if direction > 0 else "buy"
        amount = float(v.exchange.amount_to_precision(msym, quantity))
        for purpose, kind, price in (
            (Purpose.STOP, "STOP_MARKET", order.stop_loss),
            (Purpose.TAKE, "TAKE_PROFIT_MARKET", order.take_profit),
        ):
            if price is None or not math.isfinite(price):
                continue
            cid = client_order_id(self.run_id, self.agent, order.created_at, sym, purpose)
            trigger = float(v.exchange.price_to_precision(msym, price))
            try:
                self._send(sym, kind, side, amount, cid, {"stopPrice": trigger, "reduceOnly": True})
            except ExchangeRejection as exc:
                self.rejections.append(
                    FillRejection(cid, sym, order.created_at, f"{purpose.name.lower()} not placed: {exc}")
                )
                continue
            self.exits.setdefault(sym, {})[purpose.value] = cid

    def _send(
        self, sym: str, kind: str, side: str, amount: float, cid: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Submit (looking the client id up first after a restart); remember the exchange id of a plain order."""
        conditional = kind.upper() != "MARKET"
        found = self.venue.find_order(sym, cid, conditional=conditional) if self._recovering else None
        order = found if found is not None else self.venue.submit(sym, kind, side, amount, cid, params)
        if not conditional and order.get("id") is not None:
            self.orders[str(order["id"])] = cid
        return order

    def _prepare_symbol(self, sym: str, leverage: int) -> None:
        """Margin mode once per symbol, and leverage whenever it changes."""
        import ccxt

        v = self.venue
        msym = v.market_symbol(sym)
        if sym not in self._margin_set:
            try:
                v.call("set margin mode", v.exchange.set_margin_mode, self.settings.margin_mode, msym)
            except ExchangeRejection as exc:
                if not exc.caused_by(ccxt.MarginModeAlreadySet) and "no need" not in str(exc).lower():
                    raise
            self._margin_set.add(sym)
        if self._leverage.get(sym) != leverage:
            v.call("set leverage", v.exchange.set_leverage, leverage, msym)
            self._leverage[sym] = leverage

    def _cap_refusal(self, eq: float) -> str:
        """Why the account's caps refuse a new entry now ('' when they allow it)."""
        caps = self.settings.caps
        now = self._wall_ms()
        self.entries_sent_ms = [t for t in self.entries_sent_ms if now - t < 60_000]
        if len(self.entries_sent_ms) >= caps.max_orders_per_minute:
            return f"cap: {caps.max_orders_per_minute} entries per minute already sent"
        start = self.day_start_equity
        if start > 0 and eq < start * (1.0 - caps.daily_loss):
            return (
                f"cap: daily loss limit {caps.daily_loss:.1%} reached (equity {eq:,.2f} from {start:,.2f} at 00:00 UTC)"
            )
        return ""

    def _track_day(self, pf: Portfolio, tape: MarketTape) -> None:
        day = tape.last_close_ns // 1_000_000 // DAY_MS
        if day != self.day:
            self.day = day
            self.day_start_equity = equity(pf, self.symbols, tape.close_marks()) if pf.positions else pf.cash

    def _reject(self, order: Order, reason: str, pf: Portfolio) -> Portfolio:
        """Record a refusal (never sent, or refused by the exchange) and leave the account as it was."""
        self.rejections.append(FillRejection(order.order_id, order.symbol, order.created_at, reason))
        log.warning("%s %s: order refused: %s", self.account_id, order.symbol, reason)
        return pf

    def _round_amount(self, msym: str, qty: float) -> float:
        """`qty` truncated to the market's amount precision; 0 when nothing of it survives the rounding."""
        import ccxt

        try:
            return float(self.venue.exchange.amount_to_precision(msym, qty)) if qty > 0 else 0.0
        except ccxt.InvalidOrder:  # ccxt refuses an amount that rounds to zero
            return 0.0

    def _amount_step(self, sym: str) -> float:
        prec = (self.venue.market(sym).get("precision") or {}).get("amount")
        if prec is None:
            return 0.0
        prec = float(prec)
        return prec if prec < 1 else 10.0**-prec


def _recent(seen: Mapping[str, int], cursor_ms: int | None) -> dict[str, int]:
    """The ids a later sync can still fetch again (those within twice the look-back of the cursor): what the state
    must keep so an import is never repeated, without growing with the run."""
    if cursor_ms is None:
        return dict(seen)
    horizon = cursor_ms - 2 * _LOOKBACK_MS
    return {k: t for k, t in seen.items() if t >= horizon}


def ledger_wallet(pf: Portfolio) -> float:
    """What the exchange calls the wallet balance, from the ledger: cash plus the margin posted on positions."""
    return pf.cash + sum(p.margin for p in pf.positions.values())
