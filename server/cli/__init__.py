"""``jobtask``: the command line. ``serve`` and ``migrate`` run the server side; the other
commands are a gRPC client of a running server, through the generated stubs."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import grpc
import jwt

from server import config
from server.cli.output import api_failure

DEFAULT_SERVER = "127.0.0.1:50051"
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Client:
    """The connection and identity every client command uses."""

    server: str
    token: str | None
    actor: str | None
    tenant: str | None
    roles: str | None
    json_output: bool
    timeout: float
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    _channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            credentials = self.credentials()
            if credentials is not None:
                self._channel = grpc.secure_channel(self.server, credentials)
            else:
                self._channel = grpc.insecure_channel(self.server)
        return self._channel

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials of --ca-file, --cert-file and --key-file; None for plaintext."""
        if not (self.ca_file or self.cert_file):
            return None

        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None

        if bool(self.cert_file) != bool(self.key_file):
            raise click.UsageError("a client certificate needs both --cert-file and --key-file")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )

    def metadata(self) -> list[tuple[str, str]]:
        """The identity sent with each call: a bearer token, else identity headers."""
        if self.token:
            return [("authorization", f"Bearer {self.token}")]
        if self.actor and self.tenant:
            return [
                ("x-actor-id", self.actor),
                ("x-actor-tenant", self.tenant),
                ("x-actor-roles", self.roles or ""),
            ]
        raise click.UsageError(
            "no identity: pass --token (or JOBTASK_TOKEN), or --actor and --tenant with --roles "
            "(JOBTASK_ACTOR, JOBTASK_TENANT, JOBTASK_ROLES) for a server in header mode"
        )

    def call(self, method: Callable[..., R], request: Any) -> R:
        """Make one call; a failure becomes a one-line message and a non-zero exit."""
        try:
            return method(request, metadata=self.metadata(), timeout=self.timeout)
        except grpc.RpcError as error:
            raise api_failure(error, self.server) from None

    def stream(self, method: Callable[..., Iterator[R]], request: Any) -> Iterator[R]:
        """Open a server stream (no deadline)."""
        return method(request, metadata=self.metadata())


pass_client = click.make_pass_decorator(Client)


def json_option(function: Callable[P, R]) -> Callable[P, R]:
    """Accept --json after a subcommand too."""

    @click.option("--json", "json_here", is_flag=True, help="print JSON instead of tables")
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs.pop("json_here", False):
            click.get_current_context().find_object(Client).json_output = True  # type: ignore[union-attr]
        return function(*args, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--server",
    envvar="JOBTASK_SERVER",
    show_envvar=True,
    default=DEFAULT_SERVER,
    show_default=True,
    help="host:port",
)
@click.option(
    "--token", envvar="JOBTASK_TOKEN", show_envvar=True, help="bearer JWT (see 'jobtask token mint')"
)
@click.option(
    "--actor", envvar="JOBTASK_ACTOR", show_envvar=True, help="actor id, for a server in header mode"
)
@click.option(
    "--tenant", envvar="JOBTASK_TENANT", show_envvar=True, help="tenant, for a server in header mode"
)
@click.option(
    "--roles", envvar="JOBTASK_ROLES", show_envvar=True, default="", help="comma-separated roles, header mode"
)
@click.option("--json", "json_output", is_flag=True, help="print JSON instead of tables")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds per call")
@click.option(
    "--ca-file", envvar="JOBTASK_CA_FILE", show_envvar=True, help="PEM CA to trust: talk TLS to the server"
)
@click.option(
    "--cert-file", envvar="JOBTASK_CERT_FILE", show_envvar=True, help="PEM client certificate, for mutual TLS"
)
@click.option("--key-file", envvar="JOBTASK_KEY_FILE", show_envvar=True, help="PEM key of --cert-file")
@click.version_option(package_name="jobtask")
@click.pass_context
def cli(
    ctx: click.Context,
    server: str,
    token: str | None,
    actor: str | None,
    tenant: str | None,
    roles: str,
    json_output: bool,
    timeout: float,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
) -> None:
    """Jobs and tasks over gRPC: run the server, or talk to one."""
    ctx.obj = Client(server, token, actor, tenant, roles, json_output, timeout, ca_file, cert_file, key_file)
    ctx.call_on_close(lambda: ctx.obj._channel.close() if ctx.obj._channel else None)


@cli.command()
@config.options
@click.pass_context
def serve(ctx: click.Context, /, **values: Any) -> None:
    """Run the gRPC server (migrating the database first) until SIGTERM."""
    from server.__main__ import serve as run

    ctx.exit(_with_settings(values, run))


@cli.command()
@config.options
@click.pass_context
def migrate(ctx: click.Context, /, **values: Any) -> None:
    """Bring the database schema up to date."""
    from server.__main__ import migrate as run

    ctx.exit(_with_settings(values, run))


def _with_settings(values: dict[str, Any], run: Callable[[config.Settings], int]) -> int:
    try:
        settings = config.from_values(values)
    except config.ConfigError as exc:
        click.echo(f"jobtask: {exc}", err=True)
        return 2
    return run(settings)


@cli.group()
def token() -> None:
    """Development tokens."""


@token.command("mint")
@click.option("--actor", "subject", required=True, help="the 'sub' claim")
@click.option("--tenant", required=True)
@click.option("--roles", default="", help="comma-separated: admin, operator, member, viewer")
@click.option(
    "--secret", envvar="JOBTASK_JWT_SECRET", required=True, help="HS256 secret (JOBTASK_JWT_SECRET)"
)
@click.option("--ttl", type=int, default=3600, show_default=True, help="seconds until it expires")
def mint(subject: str, tenant: str, roles: str, secret: str, ttl: int) -> None:
    """Sign a development JWT with the server's HS256 secret."""
    claims = {
        "sub": subject,
        "tenant": tenant,
        "roles": [r.strip() for r in roles.split(",") if r.strip()],
        "exp": int(time.time()) + ttl,
    }
    click.echo(jwt.encode(claims, secret, algorithm="HS256"))


def parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    """KEY=VALUE pairs."""
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


def parse_json_object(text: str | None, hint: str) -> dict[str, Any] | None:
    """A JSON object given on the command line."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=hint) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=hint)
    return value
