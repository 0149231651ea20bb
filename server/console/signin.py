"""Signing in: a pasted JWT, or on loopback a development identity; signing out."""

from __future__ import annotations

from jobtask.v1 import jobs_pb2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server.auth import GRANTABLE
from server.console.api import Identity, Refusal
from server.console.app import ConsoleSettings, api_of, checked_form, is_loopback, render


def offers_development_identity(request: Request) -> bool:
    """Header identity, as the server trusts it: set up so, and reached on loopback."""
    settings: ConsoleSettings = request.app.state.settings
    client = request.client.host if request.client else None
    return settings.development_identity and is_loopback(client)


def _next(request: Request, value: object) -> str:
    target = str(value or "/")
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def show(request: Request) -> Response:
    return render(
        request,
        "signin.html",
        development=offers_development_identity(request),
        roles=sorted(GRANTABLE),
        next=_next(request, request.query_params.get("next")),
    )


async def sign_in(request: Request) -> Response:
    form = await checked_form(request)
    token = str(form.get("token", "")).strip()
    if token:
        identity = Identity.of_token(token)
    elif offers_development_identity(request):
        identity = Identity(
            actor=str(form.get("actor", "")).strip(),
            tenant=str(form.get("tenant", "")).strip(),
            roles=tuple(str(r) for r in form.getlist("roles")),
        )
    else:
        identity = Identity()
    refusal = None
    if not identity.token and not (identity.actor and identity.tenant):
        refusal = Refusal(
            code="INVALID_ARGUMENT",
            message="paste a token"
            + (", or give an actor and a tenant" if offers_development_identity(request) else ""),
        )
    else:
        try:  # the server is the judge of an identity: ask it something cheap
            await api_of(request).call(
                identity, api_of(request).jobs.GetJobStats, jobs_pb2.GetJobStatsRequest()
            )
        except Refusal as refused:
            if refused.code != "PERMISSION_DENIED":
                refusal = refused
    if refusal is not None:
        return render(
            request,
            "signin.html",
            status_code=400 if refusal.code != "UNAUTHENTICATED" else 401,
            development=offers_development_identity(request),
            roles=sorted(GRANTABLE),
            next=_next(request, form.get("next")),
            refusal=refusal,
        )
    request.session["identity"] = identity.to_session()
    return RedirectResponse(_next(request, form.get("next")), status_code=303)


async def sign_out(request: Request) -> Response:
    await checked_form(request)
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


routes = [
    Route("/signin", show, methods=["GET"]),
    Route("/signin", sign_in, methods=["POST"]),
    Route("/signout", sign_out, methods=["POST"]),
]
