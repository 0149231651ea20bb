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
    "--secure-cookies",
    is_flag=True,
    envvar="JOBTASK_CONSOLE_SECURE_COOKIES",
    show_envvar=True,
    help="send the session cookie over HTTPS only (behind a TLS-terminating proxy)",
)
@pass_client
def console(client: Client, listen: str, secret: str | None, secure_cookies: bool) -> None:
    """Serve the web console: jobs, tasks, events and an overview, as the signed-in actor.

    Every page is made of calls to the server at --server, with the identity given at
    sign-in: a pasted JWT, or (on loopback only) an actor, tenant and roles sent as
    identity headers, for a server in header mode.
    """
    import uvicorn

    from server.console.app import ConsoleSettings, create_app, is_loopback

    host, port = split_listen(listen)
    settings = ConsoleSettings(
        server=client.server,
        credentials=client.credentials(),
        development_identity=is_loopback(host),
        secure_cookies=secure_cookies,
        call_timeout=client.timeout,
        **({"secret": secret} if secret else {}),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(f"jobtask console on http://{listen} (calling jobtask at {client.server})", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
