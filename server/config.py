"""Server configuration: flags, each with a JOBTASK_* environment variable behind it."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt

from modules.db import Timeouts
from server.auth import AuthMode, JwtSettings

db_defaults = Timeouts()

DEFAULT_DATABASE_URL = "sqlite:///var/jobtask.db"
DEFAULT_LISTEN = "127.0.0.1:50051"


class ConfigError(ValueError):
    """The configuration cannot start a server; the message says what to change."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the server needs to start."""

    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DATABASE_URL
    auth_mode: AuthMode = AuthMode.JWT
    jwt_secret: str | None = None
    jwt_public_key_file: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    grace_period_s: float = 10.0
    workers: int = 16
    db_pool_size: int = 10
    event_retention_h: float = 168.0
    heartbeat_s: float = 15.0
    subscriber_buffer: int = 1000
    streams_per_actor: int = 100
    scheduler_interval_s: float = 1.0
    processes: int = 0
    db_statement_timeout_s: float = db_defaults.statement_s
    db_lock_timeout_s: float = db_defaults.lock_s
    db_idle_in_transaction_timeout_s: float = db_defaults.idle_in_transaction_s
    db_connect_timeout_s: float = db_defaults.connect_s

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

    def check(self) -> None:
        """Refuse what must not start: no JWT key in JWT mode, header identity off loopback."""
        if self.auth_mode is AuthMode.JWT and self.jwt_settings() is None:
            raise ConfigError(
                "JWT authentication needs JOBTASK_JWT_SECRET (HS256) or JOBTASK_JWT_PUBLIC_KEY_FILE "
                "(RS256/EdDSA); for a local trial use --auth-mode headers on 127.0.0.1"
            )
        if self.auth_mode is not AuthMode.JWT and not is_loopback(self.listen):
            raise ConfigError(
                f"refusing to listen on {self.listen} with {self.auth_mode} authentication: beyond loopback "
                "anyone could claim any identity. Configure JWT (JOBTASK_AUTH_MODE=jwt and a key) or listen "
                "on 127.0.0.1"
            )
        if any(a.lower() == "none" for a in self.jwt_algorithms):
            raise ConfigError("the JWT algorithm 'none' is never accepted")
        self.jwt_settings()
        if self.streams_per_actor < 0:
            raise ConfigError("--streams-per-actor must be 0 (no limit) or more")
        if self.processes < 0:
            raise ConfigError("--processes must be 0 (automatic) or more")
        if self.processes > 1 and is_sqlite(self.database_url):
            raise ConfigError(
                "SQLite serves from one process (live events do not cross processes, and SQLite "
                "has one writer anyway): use --processes 1, or PostgreSQL for more"
            )
        for name in ("db_statement_timeout_s", "db_lock_timeout_s", "db_idle_in_transaction_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-').removesuffix('-s')} must be positive")
        if self.db_connect_timeout_s < 1:
            raise ConfigError("--db-connect-timeout must be at least 1 second")


MIN_SECRET_LENGTH = 32
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


ENV = {
    "listen": "JOBTASK_LISTEN",
    "database_url": "JOBTASK_DATABASE_URL",
    "auth_mode": "JOBTASK_AUTH_MODE",
    "jwt_secret": "JOBTASK_JWT_SECRET",
    "jwt_public_key_file": "JOBTASK_JWT_PUBLIC_KEY_FILE",
    "jwt_algorithms": "JOBTASK_JWT_ALGORITHMS",
    "jwt_audience": "JOBTASK_JWT_AUDIENCE",
    "jwt_issuer": "JOBTASK_JWT_ISSUER",
    "log_level": "JOBTASK_LOG_LEVEL",
    "log_format": "JOBTASK_LOG_FORMAT",
    "grace_period_s": "JOBTASK_GRACE_PERIOD",
    "workers": "JOBTASK_WORKERS",
    "db_pool_size": "JOBTASK_DB_POOL_SIZE",
    "event_retention_h": "JOBTASK_EVENT_RETENTION_HOURS",
    "heartbeat_s": "JOBTASK_HEARTBEAT",
    "subscriber_buffer": "JOBTASK_SUBSCRIBER_BUFFER",
    "streams_per_actor": "JOBTASK_STREAMS_PER_ACTOR",
    "scheduler_interval_s": "JOBTASK_SCHEDULER_INTERVAL",
    "processes": "JOBTASK_PROCESSES",
    "db_statement_timeout_s": "JOBTASK_DB_STATEMENT_TIMEOUT",
    "db_lock_timeout_s": "JOBTASK_DB_LOCK_TIMEOUT",
    "db_idle_in_transaction_timeout_s": "JOBTASK_DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "db_connect_timeout_s": "JOBTASK_DB_CONNECT_TIMEOUT",
}


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    """Add a flag per setting, defaulting to its environment variable."""
    env = os.environ if environ is None else environ
    default = Settings()

    def flag(name: str, help_text: str, **extra: object) -> None:
        variable = ENV[name]
        parser.add_argument(
            "--" + name.replace("_", "-").removesuffix("-s").removesuffix("-h"),
            dest=name,
            default=env.get(variable, getattr(default, name)),
            help=f"{help_text} (env {variable})",
            **extra,  # type: ignore[arg-type]
        )

    flag("listen", "address to listen on, host:port")
    flag("database_url", "sqlite:///path or postgresql+psycopg://user@host/db")
    flag(
        "auth_mode",
        "jwt, or headers (trusted x-actor-* headers; loopback only)",
        choices=[m.value for m in AuthMode],
    )
    flag("jwt_secret", "HS256 secret")
    flag("jwt_public_key_file", "PEM public key for RS256/EdDSA tokens")
    flag("jwt_algorithms", "comma-separated accepted algorithms")
    flag("jwt_audience", "required 'aud' claim")
    flag("jwt_issuer", "required 'iss' claim")
    flag("log_level", "DEBUG, INFO, WARNING or ERROR")
    flag("log_format", "json or text", choices=["json", "text"])
    flag("grace_period_s", "seconds in-flight calls get to finish on SIGTERM")
    flag("workers", "threads running database work")
    flag("db_pool_size", "database connections per process")
    flag("event_retention_h", "hours events are kept in the log")
    flag("heartbeat_s", "seconds a silent event stream waits before a heartbeat")
    flag("subscriber_buffer", "events a subscriber may fall behind before its stream is cut")
    flag("streams_per_actor", "event streams one actor may hold open at once per process (0: no limit)")
    flag("scheduler_interval_s", "seconds between scheduler steps")
    flag("processes", "server processes sharing the port (0: one per core on PostgreSQL, one on SQLite)")
    flag("db_statement_timeout_s", "seconds a database statement may run")
    flag("db_lock_timeout_s", "seconds a statement may wait for a row another transaction holds")
    flag(
        "db_idle_in_transaction_timeout_s",
        "seconds the database keeps a transaction whose client went silent (PostgreSQL)",
    )
    flag("db_connect_timeout_s", "seconds to connect to the database; also bounds dead-peer detection")


def from_arguments(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags; bad values raise ConfigError."""
    try:
        algorithms = args.jwt_algorithms
        if isinstance(algorithms, str):
            algorithms = tuple(a.strip() for a in algorithms.split(",") if a.strip())
        return Settings(
            listen=args.listen,
            database_url=args.database_url,
            auth_mode=AuthMode(args.auth_mode),
            jwt_secret=args.jwt_secret or None,
            jwt_public_key_file=args.jwt_public_key_file or None,
            jwt_algorithms=tuple(algorithms),
            jwt_audience=args.jwt_audience or None,
            jwt_issuer=args.jwt_issuer or None,
            log_level=str(args.log_level).upper(),
            log_format=args.log_format,
            grace_period_s=float(args.grace_period_s),
            workers=int(args.workers),
            db_pool_size=int(args.db_pool_size),
            event_retention_h=float(args.event_retention_h),
            heartbeat_s=float(args.heartbeat_s),
            subscriber_buffer=int(args.subscriber_buffer),
            streams_per_actor=int(args.streams_per_actor),
            scheduler_interval_s=float(args.scheduler_interval_s),
            processes=int(args.processes),
            db_statement_timeout_s=float(args.db_statement_timeout_s),
            db_lock_timeout_s=float(args.db_lock_timeout_s),
            db_idle_in_transaction_timeout_s=float(args.db_idle_in_transaction_timeout_s),
            db_connect_timeout_s=float(args.db_connect_timeout_s),
        )
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
