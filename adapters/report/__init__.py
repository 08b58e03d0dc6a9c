"""Backtest outputs: signal JSON lines, the report (JSON + Markdown) and the price plot."""
