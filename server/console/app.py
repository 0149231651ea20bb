"""The console's web application: settings, sessions, the sign-in guard, rendering."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.console import words
from server.console.api import Api, Identity, Refusal
from server.console.sessions import LIFETIME_S, Sessions

HERE = Path(__file__).parent
SESSION_COOKIE = "jobtask_console"
CSRF_HEADER = "x-csrf-token"
DIGEST_HEADER, SEEN_DIGEST_HEADER = "x-digest", "x-seen-digest"

templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
)
templates.env.filters.update(
    job_status=words.job_status,
    run_status=words.run_status,
    task_status=words.task_status,
    task_priority=words.task_priority,
    when=words.when,
    duration=words.duration,
    labels=words.labels,
)
templates.env.globals.update(moment=words.moment, schedule=words.schedule, next_run=words.next_run)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSettings:
    """How the console runs: the server it calls, and how it keeps sessions."""

    server: str = "127.0.0.1:50051"
    credentials: grpc.ChannelCredentials | None = None
    # Signs the session cookies; a random one (the default) signs everyone out on restart.
    secret: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))
    # Offer a development identity (actor, tenant, roles as headers) on the sign-in page,
    # to browsers on loopback (the server trusts such headers only there, in header mode).
    development_identity: bool = False
    # The Host names the console answers to; others get 400, so a page of another site
    # whose name resolves to 127.0.0.1 cannot use a console on loopback (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1", "[::1]")
    # Send the cookie only over HTTPS (behind a TLS-terminating proxy).
    secure_cookies: bool = False
    call_timeout: float = 10.0


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host in (None, ""):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


def identity_of(request: Request) -> Identity:
    identity: Identity = request.state.identity
    return identity


def csrf_token(request: Request) -> str:
    """The session's token that every form and htmx request sends back."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


async def checked_form(request: Request) -> FormData:
    """The posted form, after its CSRF token (field or header) matched the session's."""
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or str(form.get("csrf", ""))
    if not sent or not secrets.compare_digest(sent, csrf_token(request)):
        raise HTTPException(403, "the form is stale: reload the page and try again")
    return form


def _context(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    identity = getattr(request.state, "identity", None)
    return {
        "request": request,
        "identity": identity,
        "csrf": csrf_token(request),
        "path": request.url.path,
        **context,
    }


def _digest(html: str) -> str:
    return hashlib.blake2b(html.encode(), digest_size=12).hexdigest()


def render(
    request: Request, template: str, status_code: int = 200, *, live: str = "", **context: Any
) -> Response:
    """A page or a fragment, with what every template needs. A page with a ``live`` part
    (the fragment its events reload) gets that part's digest as ``digest``."""
    if live:
        context["digest"] = _digest(templates.get_template(live).render(_context(request, context)))
    response: Response = templates.TemplateResponse(
        request, template, _context(request, context), status_code=status_code
    )
    return response


def fragment(request: Request, template: str, **context: Any) -> Response:
    """A live part of a page, reloaded by its events: 204 (htmx then leaves the page as it
    is, with what is being typed or clicked) when it is the same as the page holds."""
    html = templates.get_template(template).render(_context(request, context))
    digest = _digest(html)
    if request.headers.get(SEEN_DIGEST_HEADER) == digest:
        return Response(status_code=204)
    return HTMLResponse(html, headers={DIGEST_HEADER: digest})


def refusal_fragment(request: Request, refusal: Refusal) -> Response:
    """A refusal in words in place of a live part (its digest too, so the part is reloaded
    once the refusal no longer holds)."""
    return fragment(request, "_refusal.html", refusal=refusal)


Context = Callable[[Request], Awaitable[dict[str, Any]]]


async def outcome(
    request: Request,
    *,
    refusal: Refusal | None,
    done: str,
    page: str,
    context: Context,
    extra: dict[str, Any] | None = None,
) -> Response:
    """What an action answers: for htmx the outcome alone (the panel then reloads itself on
    the ``changed`` event), else ``page`` whole (made by ``context``) with the outcome on it."""
    if request.headers.get("hx-request"):
        response = render(request, "_outcome.html", refusal=refusal, done=done, **(extra or {}))
        response.headers["HX-Trigger"] = "changed"
        return response
    try:
        shown = await context(request)
    except Refusal as missing:
        return render(request, "missing.html", status_code=404, refusal=refusal or missing)
    return render(request, page, refusal=refusal, done=done, **(extra or {}), **shown)


Handler = Callable[[Request], Awaitable[Response]]


def live_page(page: str, part: str, context: Context, **fixed: Any) -> tuple[Handler, Handler]:
    """The two handlers of a page with a live part: the page, and the part alone (what the
    page's events reload). ``context`` makes what both show; a Refusal it raises is the
    page's "not available", or the part's refusal in words."""

    @signed_in
    async def whole(request: Request) -> Response:
        try:
            shown = await context(request)
        except Refusal as refused:
            status = 404 if refused.code == "NOT_FOUND" else 400
            return render(request, "missing.html", status_code=status, refusal=refused)
        return render(request, page, live=part, **fixed, **shown)

    @signed_in
    async def alone(request: Request) -> Response:
        try:
            shown = await context(request)
        except Refusal as refused:
            return refusal_fragment(request, refused)
        return fragment(request, part, **shown)

    return whole, alone


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def signed_in(handler: Handler) -> Handler:
    """Pages need an identity: without one a page goes to sign-in (and comes back), a
    fragment or a stream gets 401."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        identity = sessions_of(request).identity(request.session)
        if identity is None:
            if request.headers.get("hx-request") or request.url.path.endswith("/stream"):
                return Response("signed out", status_code=401, headers={"HX-Redirect": "/signin"})
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/signin?" + urlencode({"next": here}), status_code=303)
        request.state.identity = identity
        return await handler(request)

    return guarded


# What every answer carries: scripts and styles from the console only, no framing, no
# sniffing, and nothing of a page kept by caches.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, and ``cache-control: no-store`` to pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, sending)


def create_app(settings: ConsoleSettings, routes: list[BaseRoute] | None = None) -> Starlette:
    """The console, calling the server of ``settings``."""
    from server.console import events, jobs, overview, signin, tasks

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.api = Api(settings.server, credentials=settings.credentials, timeout=settings.call_timeout)
        try:
            yield
        finally:
            await app.state.api.close()

    app = Starlette(
        routes=[
            *signin.routes,
            *overview.routes,
            *jobs.routes,
            *tasks.routes,
            *events.routes,
            *(routes or []),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts)),
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret,
                session_cookie=SESSION_COOKIE,
                same_site="strict",
                https_only=settings.secure_cookies,
                max_age=LIFETIME_S,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = Sessions(settings.secret)
    return app
