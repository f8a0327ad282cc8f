"""Execution on a real exchange: the engine's `Broker` seam implemented through ccxt, with reconciliation.

This floor sits between the arena (which keeps the ledger) and the engine (which defines the seams and simulates):
`live_broker.LiveBroker` trades one isolated account on an exchange, `reconcile` compares a ledger with what the
exchange says, `venue` wraps the ccxt client (retries, error messages without secrets), `client_ids` derives the
deterministic client order ids, and `latch` decides whether live trading may start at all.
"""
