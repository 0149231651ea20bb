"""Configuration: flags and environment, and what refuses to start."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest

from server import config
from server.__main__ import main
from server.auth import AuthMode


@click.command()
@config.options
def _serve(**values: Any) -> None:
    """The options of ``serve``, parsed and no more."""


def parse(argv: list[str], environ: dict[str, str] | None = None) -> config.Settings:
    with mock.patch.dict(os.environ, environ or {}, clear=True):
        context = _serve.make_context("serve", list(argv))
    return config.from_values(context.params)


def test_every_setting_is_a_flag_and_a_variable_with_help() -> None:
    names = {option.name for option in _serve.params}
    assert names == set(config.Settings.__dataclass_fields__)
    flags = {flag for option in _serve.params for flag in option.opts}
    assert {"--grace-period", "--event-retention", "--db-statement-timeout", "--tls-client-ca-file"} <= flags
    assert config.env_of("event_retention_h") == "JOBTASK_EVENT_RETENTION_HOURS"
    assert config.env_of("db_lock_timeout_s") == "JOBTASK_DB_LOCK_TIMEOUT"
    assert all(option.help and "[env JOBTASK_" in option.help for option in _serve.params)  # type: ignore[attr-defined]


def test_values_of_the_wrong_shape_name_the_flag() -> None:
    with pytest.raises(config.ConfigError, match="--workers: 'many'"):
        parse(["--workers", "many"])
    with pytest.raises(config.ConfigError, match="--grace-period"):
        parse([], {"JOBTASK_GRACE_PERIOD": "soon"})
    assert parse(["--log-level", "debug"]).log_level == "DEBUG"


def test_environment_then_flags() -> None:
    settings = parse(
        ["--listen", "127.0.0.1:6000"], {"JOBTASK_LISTEN": "127.0.0.1:5000", "JOBTASK_WORKERS": "4"}
    )
    assert (settings.listen, settings.workers) == ("127.0.0.1:6000", 4)
    assert parse([], {"JOBTASK_JWT_ALGORITHMS": "RS256, EdDSA"}).jwt_algorithms == ("RS256", "EdDSA")


def test_jwt_mode_needs_a_key() -> None:
    with pytest.raises(config.ConfigError, match="JOBTASK_JWT_SECRET"):
        parse([]).check()
    parse(["--jwt-secret", "x" * 32]).check()


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "example.com:1"])
def test_header_identity_is_refused_beyond_loopback(listen: str) -> None:
    with pytest.raises(config.ConfigError, match="refusing to listen"):
        parse(["--auth-mode", "headers", "--listen", listen]).check()


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "localhost:1", "[::1]:50051"])
def test_header_identity_on_loopback(listen: str) -> None:
    parse(["--auth-mode", "headers", "--listen", listen]).check()


def _pem(public_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("family", "expected"), [("rsa", ("RS256",)), ("ec", ("ES256",)), ("ed25519", ("EdDSA",))]
)
def test_the_default_algorithms_follow_the_public_key(
    tmp_path: Path, family: str, expected: tuple[str, ...]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    private: object = {
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[family]()
    key = tmp_path / "key.pem"
    key.write_bytes(_pem(private.public_key()))  # type: ignore[attr-defined]
    jwt_settings = parse(["--jwt-public-key-file", str(key)]).jwt_settings()
    assert jwt_settings is not None
    assert jwt_settings.algorithms == expected


def test_jwt_settings_that_could_not_verify_safely_stop_the_server(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = tmp_path / "key.pem"
    key.write_bytes(_pem(ed25519.Ed25519PrivateKey.generate().public_key()))
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("-----BEGIN PUBLIC KEY-----\n")
    refusals = {
        "does not exist": ["--jwt-public-key-file", str(tmp_path / "missing.pem")],
        "not a PEM public key": ["--jwt-public-key-file", str(not_pem)],
        "cannot be verified with an Ed25519": [
            "--jwt-public-key-file",
            str(key),
            "--jwt-algorithms",
            "HS256",
        ],
        "unknown JWT algorithm": ["--jwt-secret", "s" * 40, "--jwt-algorithms", "HS257"],
        "at least 32 characters": ["--jwt-secret", "x"],
        "cannot be verified with a secret": ["--jwt-secret", "s" * 40, "--jwt-algorithms", "RS256"],
    }
    for message, argv in refusals.items():
        with pytest.raises(config.ConfigError, match=message):
            parse(argv).check()


def test_the_none_algorithm_is_refused() -> None:
    with pytest.raises(config.ConfigError, match="none"):
        parse(["--jwt-secret", "x" * 40, "--jwt-algorithms", "none"]).check()


def test_serve_refuses_a_bad_configuration_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--auth-mode", "headers", "--listen", "0.0.0.0:0", "--log-format", "text"]) == 2
    assert "refusing to listen on 0.0.0.0:0" in capsys.readouterr().err
    assert AuthMode("headers") is AuthMode.HEADERS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stream-stall", "nan"], "--stream-stall must be a finite number"),
        (["--heartbeat", "-5"], "--heartbeat must be positive"),
        (["--workers", "0"], "--workers must be positive"),
        (["--grace-period", "inf"], "--grace-period must be a finite number"),
        (["--database-url", "bogus://x"], "--database-url 'bogus://x' is neither"),
        (["--metrics-listen", "localhost"], "--metrics-listen must be host:port"),
    ],
)
def test_numbers_addresses_and_urls_that_cannot_serve_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        parse(["--jwt-secret", "x" * 32, *argv]).check()


def test_a_bad_log_level_or_database_url_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--log-level", "loud"]) == 2
    assert "'loud' is not one of" in capsys.readouterr().err
    assert main(["migrate", "--database-url", "bogus://x"]) == 2
    assert capsys.readouterr().err.strip() == "jobtask: unsupported database URL bogus://x"
