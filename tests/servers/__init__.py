"""Loopback servers that speak real wire protocols, so offline tests exercise the real client libraries."""
