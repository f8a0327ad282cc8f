"""Pure, point-in-time feature functions: arrays or frames in, arrays or frames out, no I/O.

`arena_lib.features.core` holds the indicator primitives (EMA, SMA, RSI, MACD, true range, ATR) that the prompt
builder, the rule agents and the feature registry all share, so an "RSI 14" means the same number everywhere.
"""
