"""Signing in: a pasted JWT, or (when the console offers it) a development identity on
loopback; signing out."""

from __future__ import annotations

from jobtask.v1 import jobs_pb2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server.auth import GRANTABLE
from server.console.api import Identity, Refusal
from server.console.app import ConsoleSettings, api_of, checked_form, is_loopback, render, sessions_of
from server.console.sessions import SessionTooLarge


def offers_development_identity(request: Request) -> bool:
    """Header identity, as the server trusts it: asked for, and reached on loopback."""
    settings: ConsoleSettings = request.app.state.settings
    client = request.client.host if request.client else None
    return settings.development_identity and is_loopback(client)


def _next(value: object) -> str:
    """Where to go after signing in: a path of the console, never another site."""
    target = str(value or "/")
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _page(request: Request, next_page: object, refusal: Refusal | None = None) -> Response:
    status = 200 if refusal is None else 401 if refusal.code == "UNAUTHENTICATED" else 400
    return render(
        request,
        "signin.html",
        status_code=status,
        development=offers_development_identity(request),
        roles=sorted(GRANTABLE),
        next=_next(next_page),
        refusal=refusal,
    )


async def show(request: Request) -> Response:
    return _page(request, request.query_params.get("next"))


def _identity(request: Request, token: str, actor: str, tenant: str, roles: tuple[str, ...]) -> Identity:
    if token:
        return Identity.of_token(token)
    if offers_development_identity(request):
        return Identity(actor=actor, tenant=tenant, roles=roles)
    return Identity()


async def sign_in(request: Request) -> Response:
    form = await checked_form(request)
    identity = _identity(
        request,
        str(form.get("token", "")).strip(),
        str(form.get("actor", "")).strip(),
        str(form.get("tenant", "")).strip(),
        tuple(str(r) for r in form.getlist("roles")),
    )
    if not identity.token and not (identity.actor and identity.tenant):
        also = ", or give an actor and a tenant" if offers_development_identity(request) else ""
        return _page(request, form.get("next"), Refusal("INVALID_ARGUMENT", "paste a token" + also))
    if violations := identity.violations():
        return _page(
            request,
            form.get("next"),
            Refusal("INVALID_ARGUMENT", "this identity cannot be sent", tuple(violations)),
        )
    try:  # the server is the judge of an identity: ask it something cheap
        await api_of(request).call(identity, api_of(request).jobs.GetJobStats, jobs_pb2.GetJobStatsRequest())
    except Refusal as refused:
        if refused.code != "PERMISSION_DENIED":  # known, but may not read jobs: still signed in
            return _page(request, form.get("next"), refused)
    try:
        sessions_of(request).begin(request.session, identity)
    except SessionTooLarge as exc:
        return _page(request, form.get("next"), Refusal("INVALID_ARGUMENT", str(exc)))
    return RedirectResponse(_next(form.get("next")), status_code=303)


async def sign_out(request: Request) -> Response:
    await checked_form(request)
    sessions_of(request).end(request.session)
    return RedirectResponse("/signin", status_code=303)


async def session(request: Request) -> Response:
    """204 while signed in, 401 otherwise: what a page asks when its stream fails."""
    signed = sessions_of(request).identity(request.session) is not None
    return Response(status_code=204 if signed else 401)


routes = [
    Route("/signin", show, methods=["GET"]),
    Route("/signin", sign_in, methods=["POST"]),
    Route("/signout", sign_out, methods=["POST"]),
    Route("/session", session),
]
