"""Pure domain of realtime-strategies: market events, strategies, parameters, config policy.

Standard library only. No I/O, no clock, no randomness: time comes from event timestamps.
Quants import this package directly in notebooks and backtests.
"""
