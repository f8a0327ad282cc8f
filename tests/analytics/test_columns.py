"""The leaderboard column spec: one definition per column, percent and fraction kept apart, boards drawn from it."""

from __future__ import annotations

import pytest

from arena_lib.analytics.columns import (
    ARENA_BOARD,
    BACKTEST_BOARD,
    COLUMNS,
    GROUPS,
    Board,
    Column,
    Unit,
    check_units,
)


def test_percentage_points_are_exactly_the_pct_columns() -> None:
    for column in COLUMNS.values():
        assert (column.unit is Unit.PERCENT) == column.name.endswith("_pct"), column
    assert COLUMNS["return_pct"].unit is Unit.PERCENT
    assert COLUMNS["total_return"].unit is Unit.FRACTION  # the backtest's return is a fraction, and says so
    for name in ("win_rate", "max_drawdown", "invalid_output_rate", "exposure", "fees_share_of_pnl"):
        assert COLUMNS[name].unit is Unit.FRACTION, name


def test_a_column_that_breaks_the_rule_is_refused() -> None:
    wrong = Column("return", "Return", Unit.PERCENT, True, "PnL over capital.", "performance")
    with pytest.raises(ValueError, match="only \\*_pct columns hold percentage points"):
        check_units([wrong])
    with pytest.raises(ValueError, match="only \\*_pct columns"):
        check_units([Column("hold_pct", "Hold", Unit.FRACTION, None, "Share held.", "behaviour")])
    with pytest.raises(ValueError, match="group"):
        Column("x", "X", Unit.RATIO, None, "An x.", "misc")


def test_every_column_is_described_for_people() -> None:
    for column in COLUMNS.values():
        assert column.label.strip(), column.name
        assert column.definition.endswith("."), column.name
        assert column.group in GROUPS
        assert column.digits >= 0
        assert column.higher_is_better in (True, False, None)
    assert COLUMNS["max_drawdown"].higher_is_better is True  # a drawdown is <= 0: closer to 0 is better
    assert COLUMNS["latency_p99"].higher_is_better is False
    assert COLUMNS["hold_pct"].higher_is_better is None  # a style, not a score


@pytest.mark.parametrize("board", [ARENA_BOARD, BACKTEST_BOARD], ids=lambda b: b.name)
def test_boards_are_ordered_selections_of_the_spec(board: Board) -> None:
    assert board.names[:2] == ["rank", "agent"]
    assert len(set(board.names)) == len(board.names)
    assert all(COLUMNS[c.name] is c for c in board.columns)
    assert board.rank_by in board.names
    assert len({c.label for c in board.columns}) == len(board.columns)  # no two headers read the same
    assert list(board.empty().columns) == board.names
    by_group = [c for g in GROUPS for c in board.group(g)]
    assert by_group == sorted(board.columns, key=lambda c: GROUPS.index(c.group))  # stable: board order per group


def test_the_arena_board_keeps_its_published_order() -> None:
    """The CSV and JSON exports and both arena boards use this order; changing it changes every export."""
    assert ARENA_BOARD.names == [
        "rank", "agent", "kind", "model", "account_value", "return_pct", "pnl", "fees", "win_rate", "biggest_win",
        "biggest_loss", "sharpe", "max_drawdown", "trades", "hold_pct", "long_pct", "short_pct", "avg_leverage",
        "avg_confidence", "avg_hold_hours", "median_hold_hours", "invalid_output_rate", "risk_clamps",
        "risk_rejections", "flip_flops", "llm_cost_usd", "net_return_pct", "latency_p50", "latency_p95",
        "latency_p99", "cutoff_overlap",
    ]  # fmt: skip
    assert ARENA_BOARD.rank_by == "account_value"


def test_a_board_cannot_rank_by_a_column_it_does_not_show() -> None:
    with pytest.raises(ValueError, match="ranks by"):
        Board.of("x", ["rank", "agent"], rank_by="sharpe")
    with pytest.raises(KeyError):
        ARENA_BOARD.group("misc")
