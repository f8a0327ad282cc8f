"""Exchange trades into ledger fills: one path for every fill a live account makes, whatever caused it.

Our own market orders, stops and take-profits that fired on the exchange, liquidations, orders that filled while
the process was down, and trades a person made by hand all enter the ledger here, as pure transitions of the
account's `Portfolio` (`engine.portfolio`). Each fill says where it came from (`Fill.source`):

- `order`: an order this process sent and saw fill;
- `exchange`: an order of ours that the exchange filled on its own (a stop, a take-profit, a liquidation);
- `recovered`: an order of ours sent before a crash or restart and found afterwards;
- `manual`: an order this platform did not make.
"""

from __future__ import annotations

from dataclasses import dataclass

from arena_lib.core.types import Fill, FillKind, OrderSide, Position
from arena_lib.engine import rules
from arena_lib.engine.portfolio import Portfolio, add_to_position, close_position, open_position, reduce_position

ORDER, EXCHANGE, RECOVERED, MANUAL = "order", "exchange", "recovered", "manual"


@dataclass(frozen=True)
class ExchangeTrade:
    """One trade as the exchange reports it, in arena terms (the arena symbol, ns time, quote-currency fee)."""

    trade_id: str
    order_id: str  # the exchange's order id
    symbol: str
    side: int  # +1 buy, -1 sell
    quantity: float
    price: float
    fee: float
    timestamp: int  # epoch ns


def apply_trade(
    pf: Portfolio,
    trade: ExchangeTrade,
    *,
    kind: FillKind | None,
    source: str,
    leverage: float,
    maintenance_margin_rate: float,
    order_id: str,
    note: str = "",
    stop_loss: float | None = None,
    take_profit: float | None = None,
) -> tuple[Portfolio, list[Fill]]:
    """The account after one exchange trade, and the fills it makes (two when the trade reverses the position).

    `kind` names the exit kind of a closing trade (stop, take-profit, liquidation); None lets the effect decide
    (a trade that opens or grows is an entry, one that shrinks or closes is an exit).
    """
    sym, q, px, mmr = trade.symbol, trade.quantity, trade.price, maintenance_margin_rate
    side = OrderSide.BUY if trade.side > 0 else OrderSide.SELL
    pos = pf.positions.get(sym)
    fills: list[Fill] = []

    def fill(qty: float, fee: float, k: FillKind, pnl: float, funding: float, margin: float, suffix: str) -> Fill:
        return Fill(
            order_id,
            sym,
            trade.timestamp,
            side,
            qty,
            px,
            fee,
            k,
            pnl,
            funding,
            note,
            margin=margin,
            leverage=leverage,
            source=source,
            trade_id=trade.trade_id + suffix,
        )

    if pos is not None and trade.side == pos.direction:
        pf = add_to_position(pf, sym, trade.side * q, px, trade.fee, mmr)
        return pf, [fill(q, trade.fee, FillKind.ENTRY, 0.0, 0.0, q * px / pos.leverage, "")]
    remaining, fee_left = q, trade.fee
    if pos is not None:
        size = abs(pos.quantity)
        exit_kind = kind if kind not in (None, FillKind.ENTRY) else FillKind.EXIT
        if q < size * (1 - 1e-9):
            released = pos.margin * q / size
            pf, pnl = reduce_position(pf, sym, q, px, trade.fee, mmr)
            return pf, [fill(q, trade.fee, exit_kind, pnl, pos.funding_paid * q / size, released, "")]
        fee_close = trade.fee * size / q
        pf, pnl = close_position(pf, sym, px, fee_close)
        fills.append(fill(size, fee_close, exit_kind, pnl, pos.funding_paid, pos.margin, ""))
        remaining, fee_left = q - size, trade.fee - fee_close
        if remaining <= size * 1e-9:
            return pf, fills
    position = Position(
        symbol=sym,
        quantity=trade.side * remaining,
        entry_price=px,
        leverage=leverage,
        margin=remaining * px / leverage,
        opened_at=trade.timestamp,
        liquidation_price=rules.liquidation_price(px, trade.side, leverage, mmr),
        stop_loss=stop_loss,
        take_profit=take_profit,
        entry_fee=fee_left,
    )
    pf = open_position(pf, position, fee_left)
    fills.append(fill(remaining, fee_left, FillKind.ENTRY, 0.0, 0.0, position.margin, "+open" if fills else ""))
    return pf, fills
