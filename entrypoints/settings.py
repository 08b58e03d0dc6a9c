"""Service settings from the environment (names and defaults of the reference system).

Per-strategy parameter overrides (``ORDERBOOK_SKEW_BUY_THRESHOLD``, …) and the
``STRATEGY_ENABLED_<ID>`` switches are read separately by :func:`strategy_environment`, typed
by each strategy's schema, so every parameter of every strategy can be set from the
environment without a field here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.redaction import header_secrets, redact, url_secrets
from domain.governance import GovernanceParams
from domain.params import CommonParams, FieldError, ParamValidationError, ParamValue, parse_text
from domain.symbol import MAX_SYMBOL_LENGTH, from_input


class Settings(BaseSettings):
    """Every environment variable the service reads; see the README configuration table."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # NATS
    nats_url: str = Field(
        "nats://localhost:4222", description="NATS server URL(s), comma separated."
    )
    nats_consumer_topic: str = Field("binance.websocket.data", description="Market data subject.")
    nats_consumer_group: str = Field(
        "realtime-strategies-group", description="Queue group of the market data subscription."
    )
    nats_consumer_name: str = Field(
        "realtime-strategies-consumer", description="NATS connection name of this process."
    )
    nats_publisher_topic: str = Field(
        "signals.trading",
        description="Signal subject prefix; signals go to <prefix>.<strategy_id>.",
    )
    nats_dominance_topic: str = Field("market.dominance", description="BTC dominance subject.")
    nats_quotes_topic: str = Field("market.quotes", description="Other venues' quotes subject.")
    nats_onchain_topic: str = Field("onchain.events", description="On-chain events subject.")
    nats_dead_letter_topic: str = Field(
        "", description="Subject for undecodable messages with their skip reason; empty = off."
    )
    nats_config_change_topic: str = Field(
        "strategies.config.changed", description="Config change broadcast subject."
    )
    signal_source: str = Field("realtime-strategies", description="`source` field of signals.")
    signal_buffer_size: int = Field(
        10_000, ge=1, description="Signals held in memory while NATS is unreachable."
    )
    nats_signal_jetstream: bool = Field(
        False,
        description=(
            "Publish signals with JetStream acknowledgements (needs the signals stream of "
            "deploy/); core NATS publish otherwise. Always on for a partitioned worker "
            "with SIGNAL_STREAM."
        ),
    )
    nats_signal_ack_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="JetStream ack wait of a signal publish; then it is sent again (same id).",
    )
    home_venue: str = Field("binance", description="Venue this service trades on (spread legs).")

    # Symbols and input limits
    trading_symbols: str = Field(
        "BTCUSDT,ETHUSDT,BNBUSDT", description="Comma-separated symbols to process, or `*` for all."
    )
    max_message_bytes: int = Field(
        1_048_576, ge=1024, description="Larger messages are skipped as `too_large`."
    )

    # Configuration stores
    config_store: Literal["failover", "mongodb", "mysql", "sqlite", "memory"] = Field(
        "failover",
        description="failover = MongoDB primary mirrored to MySQL; or one store alone.",
    )
    mongodb_uri: SecretStr = Field(
        SecretStr("mongodb://localhost:27017"), description="MongoDB connection string."
    )
    mongodb_database: str = Field("petrosa", description="MongoDB database name.")
    mysql_uri: SecretStr = Field(
        SecretStr("mysql://user:pass@host:3306/db"),
        description="MySQL connection string (fallback store), `mysql://user:pass@host:3306/db`.",
    )
    sqlite_path: str = Field(
        "realtime-strategies.sqlite3", description="SQLite file when CONFIG_STORE=sqlite."
    )
    config_cache_ttl_seconds: float = Field(60.0, gt=0, description="Configuration cache TTL.")
    config_refresh_interval_seconds: float = Field(
        60.0, gt=0, description="Background configuration refresh interval."
    )

    # HTTP API
    fastapi_host: str = Field("0.0.0.0", description="API bind address.")
    fastapi_port: int = Field(8080, ge=1, le=65535, description="API port.")
    admin_api_token: SecretStr | None = Field(
        None,
        description="Bearer token for mutating endpoints; unset = allowed only on loopback.",
    )

    # Live outcomes and what-if previews (issue 14)
    signal_outcome_retention_days: float = Field(
        30.0, gt=0, le=3650, description="Days a published signal and its outcome are kept."
    )
    signal_outcome_max_pending: int = Field(
        1000,
        ge=1,
        le=100_000,
        description=(
            "Signals per symbol followed at once for scoring; the oldest beyond it is "
            "dropped and counted."
        ),
    )
    preview_window_seconds: float = Field(
        900.0,
        ge=10,
        le=3600,
        description="Market data (event time) kept per symbol for config previews.",
    )
    preview_max_events: int = Field(
        20_000,
        ge=100,
        le=1_000_000,
        description="Most market events kept per symbol for previews (bounds memory).",
    )
    preview_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Time bound of one config preview."
    )

    # Operations
    metrics_history_seconds: int = Field(
        3600, ge=60, le=86_400, description="Market-metrics history kept per symbol (event time)."
    )
    heartbeat_interval_seconds: float = Field(60.0, gt=0, description="Heartbeat log interval.")
    max_signal_age_seconds: float = Field(
        60.0,
        ge=0,
        description=(
            "A signal whose event is older than this (wall clock) when it would be published is "
            "suppressed and counted as 'stale'; strategies still update. 0 turns it off."
        ),
    )
    future_tolerance_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        description=(
            "Market events stamped more than this after the wall clock are rejected as "
            "'future_dated' and never advance per-symbol state."
        ),
    )

    @property
    def future_tolerance_ms(self) -> int:
        return int(self.future_tolerance_seconds * 1000)

    max_signals_per_symbol_per_hour: int = Field(
        2,
        ge=0,
        le=10_000,
        description=(
            "Governance: signals per symbol, all strategies together, in any sliding hour of "
            "event time (0: no cap)."
        ),
    )
    max_signals_per_minute: int = Field(
        10,
        ge=0,
        le=100_000,
        description=(
            "Governance: signals service-wide in any sliding minute of event time (0: no cap)."
        ),
    )
    shutdown_grace_seconds: float = Field(
        20.0, gt=0, description="Time allowed to drain and flush on SIGTERM."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        "none",
        description=(
            "OpenTelemetry span export: none (no-op tracer), console (stderr) or otlp "
            "(endpoint, headers, timeout from the standard OTEL_EXPORTER_OTLP_* variables)."
        ),
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf", description="OTLP transport when OTEL_EXPORTER=otlp."
    )

    @field_validator("trading_symbols")
    @classmethod
    def _symbols(cls, value: str) -> str:
        items = [s.strip() for s in value.split(",") if s.strip()]
        if not items:
            raise ValueError("TRADING_SYMBOLS must list at least one symbol or be `*`")
        if items == ["*"]:
            return "*"
        symbols = [from_input(s) for s in items]
        if None in symbols:
            raise ValueError(
                "TRADING_SYMBOLS must be comma-separated symbols (ASCII letters and digits, "
                f"at most {MAX_SYMBOL_LENGTH}) or `*`"
            )
        return ",".join(s for s in symbols if s)

    def symbols(self) -> frozenset[str] | None:
        """The symbol allow-list, or None for every symbol seen (`*`)."""
        if self.trading_symbols == "*":
            return None
        return frozenset(self.trading_symbols.split(","))


SECRET_URL_VARIABLES = (
    "NATS_URL",
    "MONGODB_URI",
    "MYSQL_URI",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
SECRET_VALUE_VARIABLES = ("ADMIN_API_TOKEN",)
SECRET_HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")


def known_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret value configured in ``environ``: passwords and tokens of the connection
    URLs, the admin token, the OTLP header values. Read from the raw environment, so it also
    serves when the settings themselves fail to validate."""
    upper = {key.upper(): value for key, value in environ.items()}
    found: list[str] = []
    for name in SECRET_URL_VARIABLES:
        found += url_secrets(upper.get(name, ""))
    for name in SECRET_VALUE_VARIABLES:
        found += [value for value in (upper.get(name, "").strip(),) if value]
    for name in SECRET_HEADER_VARIABLES:
        found += header_secrets(upper.get(name, ""))
    return tuple(dict.fromkeys(found))


def invalid_settings_message(error: Exception, environ: Mapping[str, str]) -> str:
    """What start-up prints for settings that do not validate (pydantic quotes the input
    values, so every configured secret is masked)."""
    return f"realtime-strategies: invalid settings:\n{redact(str(error), known_secrets(environ))}"


def strategy_variables(registry: Mapping[str, type[CommonParams]]) -> tuple[str, ...]:
    """Every environment variable the strategy layer reads, for every strategy."""
    names: list[str] = []
    for strategy_id, params_type in registry.items():
        prefix = strategy_id.upper()
        names.append(f"STRATEGY_ENABLED_{prefix}")
        names += [f"{prefix}_{spec.name.upper()}" for spec in params_type.schema()]
    return tuple(names)


def unknown_strategy_variables(
    registry: Mapping[str, type[CommonParams]], environ: Mapping[str, str]
) -> list[FieldError]:
    """Variables of ``environ`` (upper-cased names) that look like strategy variables — a
    strategy id's prefix or ``STRATEGY_ENABLED_`` — but name nothing, each with the closest
    valid name (difflib)."""
    valid = strategy_variables(registry)
    known = set(valid)
    prefixes = ("STRATEGY_ENABLED_", *(f"{sid.upper()}_" for sid in registry))
    errors: list[FieldError] = []
    for name in sorted(environ):
        if name in known or not name.startswith(prefixes):
            continue
        closest = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
        hint = f"the closest valid name is {closest[0]}" if closest else "no strategy reads it"
        errors.append(FieldError(name, "unknown_parameter", f"unknown strategy variable; {hint}"))
    return errors


def config_environment(
    strategies: Mapping[str, Mapping[str, ParamValue]], settings: Settings
) -> dict[str, dict[str, ParamValue]]:
    """The environment layer of everything the admin API configures: the strategies'
    (:func:`strategy_environment`) and the governance limits ``MAX_SIGNALS_PER_SYMBOL_PER_HOUR``
    and ``MAX_SIGNALS_PER_MINUTE`` when they are set (else the code defaults apply)."""
    layers = {strategy_id: dict(values) for strategy_id, values in strategies.items()}
    governance: dict[str, ParamValue] = {
        name: getattr(settings, name)
        for name in ("max_signals_per_symbol_per_hour", "max_signals_per_minute")
        if name in settings.model_fields_set
    }
    if governance:
        layers[GovernanceParams.strategy_id] = governance
    return layers


def strategy_environment(
    registry: Mapping[str, type[CommonParams]], environ: Mapping[str, str]
) -> dict[str, dict[str, ParamValue]]:
    """The environment layer: ``<STRATEGY_ID>_<PARAM>`` and ``STRATEGY_ENABLED_<STRATEGY_ID>``.

    Values are typed by the schema and validated field by field; a variable with a strategy's
    prefix (or ``STRATEGY_ENABLED_``) that names no parameter is an error naming the closest
    valid variable (``ORDERBOOK_SKEW_BUY_THRESHLD`` → ``ORDERBOOK_SKEW_BUY_THRESHOLD``). Every
    bad variable is reported at once: start-up fails with a clear message rather than running
    on a typo.
    """
    upper = {key.upper(): value for key, value in environ.items()}
    layers: dict[str, dict[str, ParamValue]] = {}
    errors = unknown_strategy_variables(registry, upper)
    for strategy_id, params_type in registry.items():
        layer: dict[str, ParamValue] = {}
        prefix = strategy_id.upper()
        for spec in params_type.schema():
            names = [f"{prefix}_{spec.name.upper()}"]
            if spec.name == "enabled":
                names.insert(0, f"STRATEGY_ENABLED_{prefix}")
            for name in names:
                if name not in upper:
                    continue
                try:
                    layer[spec.name] = parse_text(spec, upper[name])
                except ParamValidationError as error:
                    errors.extend(FieldError(name, e.code, e.message) for e in error.errors)
        for problem in params_type.field_errors(layer):
            errors.append(
                FieldError(f"{prefix}_{problem.field.upper()}", problem.code, problem.message)
            )
        if layer:
            layers[strategy_id] = layer
    if errors:
        raise ParamValidationError(errors)
    return layers
