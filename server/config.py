"""Server configuration: each setting is declared once, as a field of Settings, and becomes a
flag of ``jobtask serve`` / ``migrate`` with a JOBTASK_* environment variable behind it."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import click
import jwt
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from modules.db import Timeouts
from server import tls
from server.auth import AuthMode, JwtSettings

db_defaults = Timeouts()

DEFAULT_DATABASE_URL = "sqlite:///var/jobtask.db"
DEFAULT_LISTEN = "127.0.0.1:50051"
AUTH_MODES = tuple(m.value for m in AuthMode)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error")


class ConfigError(ValueError):
    """The configuration cannot start a server; the message says what to change."""


def setting(default: Any, help_text: str, *, env: str | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A setting, declared once: its default, its help, its environment variable (derived
    from its flag unless given) and the values it may take. The flag is the field name
    with dashes, without a unit suffix (``_s`` seconds, ``_h`` hours)."""
    return field(default=default, metadata={"help": help_text, "env": env, "choices": choices})


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the server needs to start; every field is a flag and an environment variable."""

    listen: str = setting(DEFAULT_LISTEN, "address to listen on, host:port")
    database_url: str = setting(DEFAULT_DATABASE_URL, "sqlite:///path or postgresql+psycopg://user@host/db")
    auth_mode: AuthMode = setting(
        AuthMode.JWT,
        "jwt, or headers (trusted x-actor-* headers; loopback only, or behind mutual TLS)",
        choices=AUTH_MODES,
    )
    jwt_secret: str | None = setting(None, "HS256 secret")
    jwt_public_key_file: str | None = setting(None, "PEM public key for RS256/ES256/EdDSA tokens")
    jwt_algorithms: tuple[str, ...] = setting((), "comma-separated accepted algorithms")
    jwt_audience: str | None = setting(None, "required 'aud' claim")
    jwt_issuer: str | None = setting(None, "required 'iss' claim")
    tls_cert_file: str | None = setting(None, "PEM certificate chain: serve TLS (reloaded when it changes)")
    tls_key_file: str | None = setting(None, "PEM private key of --tls-cert-file")
    tls_client_ca_file: str | None = setting(None, "PEM CA bundle: require client certificates it signed")
    metrics_listen: str | None = setting(
        None, "host:port serving Prometheus metrics at /metrics (with --processes N: port, port+1, ...)"
    )
    traces: str = setting(
        "off",
        "OpenTelemetry traces: off, otlp (to OTEL_EXPORTER_OTLP_ENDPOINT, over HTTP) or console",
        choices=("off", "otlp", "console"),
    )
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR", choices=LOG_LEVELS)
    log_format: str = setting("json", "json or text", choices=("json", "text"))
    grace_period_s: float = setting(
        10.0, "seconds in-flight calls get to finish on SIGTERM", env="JOBTASK_GRACE_PERIOD"
    )
    workers: int = setting(16, "threads running database work")
    db_pool_size: int = setting(10, "database connections per process")
    event_retention_h: float = setting(
        168.0, "hours events are kept in the log", env="JOBTASK_EVENT_RETENTION_HOURS"
    )
    run_retention_count: int = setting(100, "finished runs of each job always kept")
    run_retention_h: float = setting(
        168.0, "hours finished runs beyond those are kept", env="JOBTASK_RUN_RETENTION_HOURS"
    )
    heartbeat_s: float = setting(15.0, "seconds a silent event stream waits before a heartbeat")
    subscriber_buffer: int = setting(1000, "events a subscriber may fall behind before its stream is cut")
    stream_stall_s: float = setting(
        30.0, "seconds an event stream may wait on a client that reads nothing before it is ended"
    )
    streams_per_actor: int = setting(
        100, "event streams one actor may hold open at once per process (0: no limit)"
    )
    scheduler_interval_s: float = setting(1.0, "seconds between scheduler steps (promotions, reaping)")
    processes: int = setting(
        0, "server processes sharing the port (0: one per core on PostgreSQL, one on SQLite)"
    )
    db_statement_timeout_s: float = setting(db_defaults.statement_s, "seconds a database statement may run")
    db_lock_timeout_s: float = setting(
        db_defaults.lock_s, "seconds a statement may wait for a row another transaction holds"
    )
    db_idle_in_transaction_timeout_s: float = setting(
        db_defaults.idle_in_transaction_s,
        "seconds the database keeps a transaction whose client went silent (PostgreSQL)",
    )
    db_connect_timeout_s: float = setting(
        db_defaults.connect_s, "seconds to connect to the database; also bounds dead-peer detection"
    )

    def db_timeouts(self) -> Timeouts:
        """The bounds on database waits."""
        return Timeouts(
            statement_s=self.db_statement_timeout_s,
            lock_s=self.db_lock_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_timeout_s,
            connect_s=self.db_connect_timeout_s,
        )

    def process_count(self) -> int:
        """How many server processes to run: ``processes``, or by default one per core on
        PostgreSQL and one on SQLite (whose live events do not cross processes)."""
        if self.processes > 0:
            return self.processes
        return 1 if is_sqlite(self.database_url) else max(1, os.cpu_count() or 1)

    def jwt_settings(self) -> JwtSettings | None:
        """How tokens are verified, from the secret or the public key file; ConfigError for
        settings that could not verify a token safely."""
        unknown = sorted(set(self.jwt_algorithms) - set(jwt.algorithms.get_default_algorithms()))
        if unknown:
            raise ConfigError(f"unknown JWT algorithm(s): {', '.join(unknown)}")
        if self.jwt_secret:
            if len(self.jwt_secret) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"the JWT secret must be at least {MIN_SECRET_LENGTH} characters (HS256 needs 256 bits)"
                )
            algorithms = self.jwt_algorithms or ("HS256",)
            _require_family(algorithms, "a secret", ("HS",))
            return JwtSettings(
                key=self.jwt_secret, algorithms=algorithms, audience=self.jwt_audience, issuer=self.jwt_issuer
            )
        if self.jwt_public_key_file:
            path = Path(self.jwt_public_key_file)
            if not path.is_file():
                raise ConfigError(f"JWT public key file {path} does not exist")
            pem = path.read_bytes()
            family = _public_key_family(pem, path)
            algorithms = self.jwt_algorithms or _KEY_ALGORITHMS[family]
            _require_family(algorithms, f"an {family} public key", _FAMILY_PREFIXES[family])
            return JwtSettings(
                key=pem, algorithms=algorithms, audience=self.jwt_audience, issuer=self.jwt_issuer
            )
        return None

    def _check_numbers(self) -> None:
        """Every number finite; counts and durations positive where zero means nothing."""
        for name in _FIELDS:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag_of(name)} must be a finite number, not {value}")
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{flag_of(name)} must be positive, not {getattr(self, name)}")

    def certificate_files(self) -> tls.CertificateFiles | None:
        """The TLS files to serve with, checked; None without TLS."""
        if self.tls_cert_file is None and self.tls_key_file is None:
            if self.tls_client_ca_file is not None:
                raise ConfigError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
            return None
        if self.tls_cert_file is None or self.tls_key_file is None:
            raise ConfigError("TLS needs both --tls-cert-file and --tls-key-file")
        try:
            return tls.CertificateFiles(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)
        except tls.TlsError as exc:
            raise ConfigError(str(exc)) from None

    def check(self) -> None:
        """Refuse what must not start: no JWT key in JWT mode, header identity off loopback
        (unless every client proves itself with a certificate), TLS files that cannot serve."""
        if self.auth_mode is AuthMode.JWT and self.jwt_settings() is None:
            raise ConfigError(
                "JWT authentication needs JOBTASK_JWT_SECRET (HS256) or JOBTASK_JWT_PUBLIC_KEY_FILE "
                "(RS256/EdDSA); for a local trial use --auth-mode headers on 127.0.0.1"
            )
        certificates = self.certificate_files()
        mutual_tls = certificates is not None and certificates.mutual
        if self.auth_mode is not AuthMode.JWT and not is_loopback(self.listen) and not mutual_tls:
            raise ConfigError(
                f"refusing to listen on {self.listen} with {self.auth_mode} authentication: beyond loopback "
                "anyone could claim any identity. Configure JWT (JOBTASK_AUTH_MODE=jwt and a key), mutual "
                "TLS (--tls-client-ca-file), or listen on 127.0.0.1"
            )
        if any(a.lower() == "none" for a in self.jwt_algorithms):
            raise ConfigError("the JWT algorithm 'none' is never accepted")
        self.jwt_settings()
        if self.metrics_listen is not None:
            _host, _, port = self.metrics_listen.rpartition(":")
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"--metrics-listen must be host:port, not {self.metrics_listen!r}")
        self._check_numbers()
        try:
            backend = make_url(self.database_url).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"--database-url {self.database_url!r} is neither sqlite:///path nor postgresql+psycopg://..."
            )
        if self.streams_per_actor < 0:
            raise ConfigError("--streams-per-actor must be 0 (no limit) or more")
        if self.processes < 0:
            raise ConfigError("--processes must be 0 (automatic) or more")
        if self.processes > 1 and is_sqlite(self.database_url):
            raise ConfigError(
                "SQLite serves from one process (live events do not cross processes, and SQLite "
                "has one writer anyway): use --processes 1, or PostgreSQL for more"
            )
        if self.db_connect_timeout_s < 1:
            raise ConfigError("--db-connect-timeout must be at least 1 second")


MIN_SECRET_LENGTH = 32
# Settings for which zero or less means nothing sensible.
POSITIVE = (
    "grace_period_s",
    "workers",
    "db_pool_size",
    "event_retention_h",
    "run_retention_count",
    "run_retention_h",
    "heartbeat_s",
    "subscriber_buffer",
    "stream_stall_s",
    "scheduler_interval_s",
    "db_statement_timeout_s",
    "db_lock_timeout_s",
    "db_idle_in_transaction_timeout_s",
)
# Default algorithms for a public key, and the prefixes of the ones it can verify.
_KEY_ALGORITHMS = {"RSA": ("RS256",), "EC": ("ES256",), "Ed25519": ("EdDSA",)}
_FAMILY_PREFIXES = {"RSA": ("RS", "PS"), "EC": ("ES",), "Ed25519": ("EdDSA",)}


def _public_key_family(pem: bytes, path: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem)
    except ValueError:
        raise ConfigError(f"JWT public key file {path} is not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    raise ConfigError(f"JWT public key file {path} holds a {type(key).__name__}: use RSA, EC or Ed25519")


def _require_family(algorithms: tuple[str, ...], what: str, prefixes: tuple[str, ...]) -> None:
    wrong = [a for a in algorithms if not a.startswith(prefixes)]
    if wrong:
        raise ConfigError(f"JWT algorithm(s) {', '.join(wrong)} cannot be verified with {what}")


def is_sqlite(database_url: str) -> bool:
    """True for an SQLite database URL."""
    return database_url.startswith("sqlite")


def is_loopback(listen: str) -> bool:
    """True when ``host:port`` binds only the loopback interface."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def flag_of(name: str) -> str:
    """The command-line flag of setting ``name``."""
    return "--" + name.replace("_", "-").removesuffix("-s").removesuffix("-h")


def env_of(name: str) -> str:
    """The environment variable of setting ``name``."""
    declared: str | None = _FIELDS[name].metadata["env"]
    return declared or "JOBTASK_" + flag_of(name).removeprefix("--").replace("-", "_").upper()


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add a click option per setting (flag, environment variable, help) to ``command``;
    the command receives them as keyword arguments named after the settings."""
    default = Settings()
    for name in reversed(list(_FIELDS)):
        choices = _FIELDS[name].metadata["choices"]
        value = getattr(default, name)
        command = click.option(
            flag_of(name),
            name,
            envvar=env_of(name),
            default=None,
            type=click.Choice(choices) if choices else None,
            help=f"{_FIELDS[name].metadata['help']} [env {env_of(name)}"
            + (f"; default {_shown(value)}]" if _shown(value) else "]"),
        )(command)
    return command


def from_values(values: Mapping[str, Any]) -> Settings:
    """Settings from option values (text from a flag or the environment; None: the default);
    a value of the wrong shape raises ConfigError naming the flag."""
    chosen: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in _FIELDS or raw is None:
            continue
        kind = _HINTS[name]
        try:
            chosen[name] = _convert(kind, raw)
        except ValueError as exc:
            raise ConfigError(f"{flag_of(name)}: {raw!r} is not a valid value ({exc})") from None
    if "log_level" in chosen:
        chosen["log_level"] = str(chosen["log_level"]).upper()
    return Settings(**chosen)


def _convert(kind: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    if kind in (int, float):
        return kind(raw)
    if kind == tuple[str, ...]:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind is AuthMode:
        return AuthMode(raw)
    if kind == str | None:
        return raw or None
    return raw


def _shown(value: Any) -> str:
    if value is None or value == ():
        return ""
    return str(value.value if isinstance(value, AuthMode) else value)


_FIELDS = {f.name: f for f in fields(Settings)}
_HINTS = get_type_hints(Settings)
