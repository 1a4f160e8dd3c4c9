"""The simulator's HTTP routes, at the paths SID serves them (spec §1).

=============================  ========================================================
``GET /api/oauth/authorize``   consent page, or an error redirect, or an error page
``POST …/authorize/decision``  the consent form's answer: a redirect with a code
``POST /oauth/token``          authorization_code and refresh_token grants
``POST /oauth/revoke``         RFC 7009 revocation
``POST /v1/users/me/query``    the query API, behind a bearer access token
``GET /healthz``               liveness
``/admin/…``                   test controls (see :mod:`simulator.admin`)
=============================  ========================================================

Handlers stay thin: parse, call the provider, serialise. No request is logged above
DEBUG, and no token, code or secret is logged at all.
"""

from __future__ import annotations

import datetime

from aiohttp import web

from simulator import admin, documents
from simulator.authorization import AuthorizeRefusal, UntrustedRedirect
from simulator.consent import DECISION_PATH, consent_page
from simulator.grants import Client
from simulator.provider import OAuthError, Provider, invalid_request
from simulator.stats import Stats
from simulator.tenant import Tenant
from simulator.wire import (
    TENANT,
    bearer_token,
    credentials,
    error_response,
    guarded,
    html_error,
    html_response,
    json_object,
    json_response,
    read_fields,
    redirect,
    required,
)

MAX_QUERY_LIMIT = 100
GRANT_GROUPS = {"authorization_code": "code_exchanges", "refresh_token": "refreshes"}
UNAUTHORIZED_QUERY = {
    "error": "invalid_token",
    "error_description": "The access token is missing, invalid or expired.",
}


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# The front door: authorize and the consent decision.


async def authorize(request: web.Request) -> web.Response:
    """Show the consent page, or refuse as spec §7 says."""
    provider = request.app[TENANT].provider
    try:
        consent = provider.begin_consent(request.query)
    except UntrustedRedirect as refusal:
        return html_error(400, refusal.message)
    except AuthorizeRefusal as refusal:
        return redirect(refusal.location)
    return html_response(200, consent_page(consent))


async def decide(request: web.Request) -> web.Response:
    """Turn the consent form's Approve or Deny into the redirect back to the app."""
    form = await request.post()
    decision = form.get("decision")
    sid_user = str(form.get("user", "")).strip()
    if decision not in ("approve", "deny"):
        return html_error(400, "Choose Approve or Deny.")
    if decision == "approve" and not 0 < len(sid_user) <= 100:
        return html_error(
            400, "Enter the SID account to connect (up to 100 characters)."
        )
    try:
        location = request.app[TENANT].provider.decide(
            str(form.get("request_id", "")),
            sid_user if decision == "approve" else None,
        )
    except UntrustedRedirect as refusal:
        return html_error(400, refusal.message)
    return redirect(location)


# The token endpoint.


def _run_grant(
    provider: Provider, client: Client, fields: dict[str, str]
) -> dict[str, object]:
    grant_type = required(fields, "grant_type")
    if grant_type == "authorization_code":
        return provider.exchange_code(
            client,
            required(fields, "code"),
            fields.get("redirect_uri"),
            fields.get("code_verifier"),
        )
    if grant_type == "refresh_token":
        # SID's samples also send redirect_uri here; like SID, ignore it.
        return provider.refresh(
            client, required(fields, "refresh_token"), fields.get("scope")
        )
    raise OAuthError(
        400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}"
    )


def _count_grant(stats: Stats, fields: dict[str, str], outcome: str) -> None:
    group = GRANT_GROUPS.get(fields.get("grant_type", ""))
    if group is not None:
        stats.outcome(group, outcome)


async def token(request: web.Request) -> web.Response:
    """``POST /oauth/token``: exchange a code or a refresh token."""
    provider = request.app[TENANT].provider
    fields: dict[str, str] = {}
    try:
        fields = await read_fields(request)
        client = provider.authenticate(credentials(request, fields))
        body = _run_grant(provider, client, fields)
    except OAuthError as error:
        _count_grant(provider.stats, fields, error.kind)
        return error_response(error)
    _count_grant(provider.stats, fields, "ok")
    return json_response(200, body)


async def revoke(request: web.Request) -> web.Response:
    """``POST /oauth/revoke``: 200 with an empty body, known token or not."""
    provider = request.app[TENANT].provider
    try:
        fields = await read_fields(request)
        client = provider.authenticate(credentials(request, fields))
        outcome = provider.revoke(client, required(fields, "token"))
    except OAuthError as error:
        provider.stats.outcome("revokes", error.kind)
        return error_response(error)
    provider.stats.outcome("revokes", outcome)
    return web.Response(status=200, headers={"Cache-Control": "no-store"})


# The query API.


def _query_arguments(raw: bytes) -> tuple[str, int]:
    body = json_object(raw)
    query = body.get("query")
    limit = body.get("limit", 10)
    if not isinstance(query, str) or not query.strip():
        raise invalid_request("query is required and must be a non-empty string")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise invalid_request("limit must be a positive whole number")
    return query, min(limit, MAX_QUERY_LIMIT)


async def query(request: web.Request) -> web.Response:
    """``POST /v1/users/me/query``: search the user's documents with an access token."""
    tenant = request.app[TENANT]
    value = bearer_token(request)
    access = tenant.provider.access_token(value) if value else None
    if access is None:
        tenant.stats.outcome("queries", "unauthorized")
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return json_response(401, UNAUTHORIZED_QUERY, challenge)
    try:
        text, limit = _query_arguments(await request.read())
    except OAuthError as error:
        tenant.stats.outcome("queries", "invalid_request")
        return error_response(error)
    tenant.stats.outcome("queries", "ok")
    return json_response(200, _query_result(tenant, access.sid_user, text, limit))


def _query_result(
    tenant: Tenant, sid_user: str, text: str, limit: int
) -> dict[str, object]:
    synced = datetime.datetime.fromtimestamp(tenant.started_at, datetime.UTC)
    return {
        "results": documents.search(sid_user, text, limit),
        "meta": {
            "sync_in_progress": False,
            "last_sync_completed_at": synced.isoformat(timespec="seconds"),
        },
    }


def create_app(tenant: Tenant) -> web.Application:
    """The aiohttp application serving ``tenant``."""
    app = web.Application()
    app[TENANT] = tenant
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/oauth/authorize", authorize)
    app.router.add_post(DECISION_PATH, decide)
    app.router.add_post("/oauth/token", guarded("token", token))
    app.router.add_post("/oauth/revoke", guarded("revoke", revoke))
    app.router.add_post("/v1/users/me/query", guarded("query", query))
    admin.add_routes(app)
    return app
