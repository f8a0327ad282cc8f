"""Pure analytics of results: `metrics` (returns, risk, trade statistics), `trades` (fills paired into round trips)
and `columns` (the one leaderboard column spec every board derives from), plus the backtest `leaderboard`."""
