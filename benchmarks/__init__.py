"""Speed benchmarks (scripts); `_common` holds what they share."""
