"""The `realtime-strategies` command: serve, route, run-local, mcp, backtest, sweep, record."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from entrypoints import backtest, record, sweep

DEFAULT_CAPTURE = Path("../shared/data/binance-spot-btcusdt-2024-08-08.jsonl.gz")
DEFAULT_MCP_URL = "http://127.0.0.1:8080/mcp"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-strategies",
        description="Crypto market data to trading signals: service, embedded demo, backtest.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="the production service (NATS, MongoDB/MySQL, API) configured from env"
    )
    commands.add_parser(
        "route",
        help="the partition router: market data to <prefix>.<partition>.<SYMBOL>.<kind> "
        "(docs/adr/0010-symbol-partitioning.md)",
    )
    local = commands.add_parser(
        "run-local",
        help="the service on embedded defaults: replay of a capture, SQLite, API on :8080",
    )
    local.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8080)
    local.add_argument("--sqlite", default="out/run-local/config.sqlite3")
    local.add_argument("--speed", type=float, default=1.0, help="replay pace, 1 = real time")
    local.add_argument("--once", action="store_true", help="stop at the end of the capture")
    mcp = commands.add_parser(
        "mcp",
        help="the MCP tools of a running service over stdio, for LLM agents "
        "(token from ADMIN_API_TOKEN)",
    )
    mcp.add_argument("--url", default=DEFAULT_MCP_URL, help="the service's /mcp endpoint")
    backtest.build_parser(
        commands.add_parser("backtest", help="replay captures through the strategies and trades")
    )
    sweep.build_parser(
        commands.add_parser(
            "sweep", help="a parameter grid over captures, locally or on a Dask cluster"
        )
    )
    record.build_parser(
        commands.add_parser(
            "record", help="write the market subjects to rotating captures for the backtest"
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "backtest":
        return backtest.main(args)
    if args.command == "sweep":
        return sweep.main(args)
    if args.command == "record":
        return record.main(args)
    if args.command == "mcp":
        from entrypoints.mcp_stdio import serve_stdio

        return serve_stdio(args.url)
    # The service stack (FastAPI, NATS, drivers) is imported only when it is needed.
    from entrypoints.service import run_local, serve

    if args.command == "route":
        from entrypoints.partitioned import route

        return route()
    if args.command == "serve":
        return serve()
    return run_local(
        capture=args.capture,
        host=args.host,
        port=args.port,
        sqlite_path=args.sqlite,
        speed=args.speed,
        once=args.once,
    )


if __name__ == "__main__":
    sys.exit(main())
