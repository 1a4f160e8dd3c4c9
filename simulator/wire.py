"""What travels over HTTP: request bodies in, JSON and HTML out, and the fault layer.

SID's own samples send both JSON and form bodies to the same endpoints (spec §2.1),
and client credentials may come in the body or as HTTP Basic (spec §2.2), so parsing
is shared by the token and revoke endpoints. :func:`guarded` wraps an endpoint with
the injected latency, the rate limit and the injected faults, in that order.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from simulator.consent import error_page
from simulator.faults import Fault, FaultInjector, FaultSettings
from simulator.provider import ClientCredentials, OAuthError, invalid_request
from simulator.ratelimit import Allowance
from simulator.stats import Stats
from simulator.tenant import Tenant

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TENANT = web.AppKey("tenant", Tenant)
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# RFC 6749 §5.1: token responses must not be cached anywhere.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
RATE_LIMITED_ENDPOINTS = frozenset({"token", "revoke"})
RATE_LIMITED_BODY = {
    "error": "access_denied",
    "error_description": "Global limit has been reached",
}
MALFORMED_BODY = b'{"access_token": sim_at_, "token_type": Bearer, <garbled upstream>'
TRUNCATED_SOURCE = json.dumps(
    {
        "access_token": "sim_at_" + "x" * 43,
        "refresh_token": "sim_rt_" + "x" * 43,
        "scope": "query:data offline_access",
        "expires_in": 86400,
        "token_type": "Bearer",
    }
).encode()
STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def json_response(
    status: int, body: object, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer that no cache keeps."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=JSON,
        headers={**NO_STORE, **(headers or {})},
    )


def error_response(error: OAuthError) -> web.Response:
    return json_response(error.status, error.body())


def html_response(status: int, html: str) -> web.Response:
    return web.Response(
        status=status,
        text=html,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, **NO_STORE})


def html_error(status: int, message: str) -> web.Response:
    return html_response(status, error_page(message))


# Request bodies.


def _form_fields(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        raise invalid_request("The request body is not valid UTF-8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        # RFC 6749 §3.2: parameters must not be included more than once.
        if name in fields:
            raise invalid_request(f"Parameter {name} is repeated")
        fields[name] = value
    return fields


def json_object(raw: bytes) -> dict[str, object]:
    """A JSON object body, or a 400 saying why not."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object")
    return body


def _json_fields(raw: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in json_object(raw).items():
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise invalid_request(f"Parameter {name} must be a string")
        fields[name] = value
    return fields


async def read_fields(request: web.Request) -> dict[str, str]:
    """The parameters of a form or JSON body; empty values count as absent."""
    raw = await request.read()
    if request.content_type == FORM:
        return _form_fields(raw)
    if request.content_type == JSON:
        return _json_fields(raw)
    raise invalid_request(f"Content-Type must be {FORM} or {JSON}")


def required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise invalid_request(f"Missing required parameter: {name}")
    return value


def _basic_pair(encoded: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else (None, None)


def credentials(request: web.Request, fields: dict[str, str]) -> ClientCredentials:
    """The client credentials offered: HTTP Basic when present, else the body."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        client_id, secret = _basic_pair(value.strip())
        return ClientCredentials(
            client_id, secret, "basic", body_client_id=fields.get("client_id")
        )
    return ClientCredentials(
        fields.get("client_id"), fields.get("client_secret"), "post"
    )


def bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


# Faults and the rate limit.


def _fault_response(fault: Fault, settings: FaultSettings) -> web.Response:
    """The broken answer that replaces processing."""
    if fault is Fault.ERROR:
        status = settings.error_status
        error = "temporarily_unavailable" if status == 503 else "server_error"
        body = {"error": error, "error_description": STATUS_TEXT[status]}
        return json_response(status, body)
    if fault is Fault.MALFORMED:
        return web.Response(body=MALFORMED_BODY, content_type=JSON, headers=NO_STORE)
    if fault is Fault.TRUNCATED:
        truncated = TRUNCATED_SOURCE[: len(TRUNCATED_SOURCE) // 2]
        return web.Response(body=truncated, content_type=JSON, headers=NO_STORE)
    status = settings.html_error_status
    title = f"{status} {STATUS_TEXT[status]}"
    page = (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html")


async def _hang_up(request: web.Request, hold_seconds: float) -> web.Response:
    """Hold the request, then close the connection without answering."""
    await asyncio.sleep(hold_seconds)
    if request.transport is not None:
        request.transport.close()
    # Never delivered: the connection is already closed.
    return web.Response(status=504)


async def _answer(
    request: web.Request, handler: Handler, faults: FaultInjector | None, stats: Stats
) -> web.StreamResponse:
    fault = faults.draw() if faults is not None else None
    if fault is None or faults is None:
        return await handler(request)
    stats.outcome("faults_injected", fault.value)
    if fault is Fault.DROP_RESPONSE:
        await handler(request)
        return await _hang_up(request, faults.settings.drop_hold_seconds)
    if fault is Fault.TIMEOUT:
        return await _hang_up(request, faults.settings.timeout_hold_seconds)
    return _fault_response(fault, faults.settings)


def _rate_limited(tenant: Tenant, allowance: Allowance) -> web.Response:
    tenant.stats.count("rate_limited")
    settings = tenant.faults.settings
    headers = {}
    if settings.retry_after:
        headers["Retry-After"] = str(allowance.retry_after(tenant.clock()))
    return json_response(settings.rate_limit_status, RATE_LIMITED_BODY, headers)


async def _delay(faults: FaultInjector, stats: Stats) -> None:
    seconds = faults.delay()
    if seconds > 0:
        stats.outcome("faults_injected", "latency")
        await asyncio.sleep(seconds)


def guarded(endpoint: str, handler: Handler) -> Handler:
    """``handler`` behind the endpoint's latency, rate limit and faults."""
    limited = endpoint in RATE_LIMITED_ENDPOINTS
    requests_counter = f"{endpoint}_requests"

    async def guarded_handler(request: web.Request) -> web.StreamResponse:
        tenant = request.app[TENANT]
        tenant.stats.count(requests_counter)
        faults = tenant.faults if tenant.faults.applies_to(endpoint) else None
        if faults is not None:
            await _delay(faults, tenant.stats)
        bucket = tenant.rate_limit if limited else None
        allowance = bucket.take() if bucket is not None else None
        if allowance is not None and not allowance.allowed:
            response: web.StreamResponse = _rate_limited(tenant, allowance)
        else:
            response = await _answer(request, handler, faults, tenant.stats)
        if allowance is not None:
            response.headers.update(allowance.headers())
        return response

    return guarded_handler
