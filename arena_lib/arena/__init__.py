"""The competition layer: leaderboards now; rounds, isolated accounts and persistence build on the engine loop."""
