"""``jobtask console``: the web console, a client of the server named by --server."""

from __future__ import annotations

import logging

import click

from server.cli import Client, pass_client

DEFAULT_LISTEN = "127.0.0.1:8080"


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) as a pair; BadParameter otherwise."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not host:port", param_hint="--listen")
    return host.strip("[]"), int(port)


@click.command()
@click.option(
    "--listen",
    envvar="JOBTASK_CONSOLE_LISTEN",
    show_envvar=True,
    default=DEFAULT_LISTEN,
    show_default=True,
    help="host:port the console serves on",
)
@click.option(
    "--secret",
    envvar="JOBTASK_CONSOLE_SECRET",
    show_envvar=True,
    help="signs the session cookies; unset: a random one (sessions end when the console restarts)",
)
@click.option(
    "--development-identity",
    is_flag=True,
    envvar="JOBTASK_CONSOLE_DEVELOPMENT_IDENTITY",
    show_envvar=True,
    help="offer signing in as any actor, tenant and roles (sent as identity headers, for a server "
    "in header mode); only with a loopback --listen, to browsers on loopback",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    envvar="JOBTASK_CONSOLE_ALLOWED_HOSTS",
    show_envvar=True,
    help="a Host name the console answers to (repeatable; the variable takes several, space-separated); "
    "default: the loopback names on loopback, any name otherwise",
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    envvar="JOBTASK_CONSOLE_SECURE_COOKIES",
    show_envvar=True,
    help="send the session cookie over HTTPS only (behind a TLS-terminating proxy)",
)
@pass_client
def console(
    client: Client,
    listen: str,
    secret: str | None,
    development_identity: bool,
    allowed_hosts: tuple[str, ...],
    secure_cookies: bool,
) -> None:
    """Serve the web console: jobs, tasks, events and an overview, as the signed-in actor.

    Every page is made of calls to the server at --server, with the identity given at
    sign-in: a pasted JWT, or with --development-identity (on loopback only) an actor,
    tenant and roles sent as identity headers, for a server in header mode.
    """
    import uvicorn

    from server.console.app import ConsoleSettings, create_app, is_loopback

    host, port = split_listen(listen)
    loopback = is_loopback(host)
    if development_identity and not loopback:
        raise click.BadParameter(
            "a development identity is offered only by a console listening on loopback",
            param_hint="--development-identity",
        )
    defaults = ConsoleSettings()
    # On loopback the loopback names (and those given); elsewhere those given, else any.
    hosts = (*defaults.allowed_hosts, *allowed_hosts) if loopback else (allowed_hosts or ("*",))
    settings = ConsoleSettings(
        server=client.server,
        credentials=client.credentials(),
        development_identity=development_identity,
        allowed_hosts=hosts,
        secure_cookies=secure_cookies,
        call_timeout=client.timeout,
        secret=secret or defaults.secret,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(f"jobtask console on http://{listen} (calling jobtask at {client.server})", err=True)
    # No X-Forwarded-For: who is on loopback is the socket's peer, whatever a header says.
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False, proxy_headers=False
    )
