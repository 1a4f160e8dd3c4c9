"""Test controls under ``/admin/``: counters, faults, settings, users, reset.

========================================  =============================================
``GET /admin/stats``                      every counter (see :mod:`simulator.stats`)
``POST /admin/stats/reset``               zero the counters
``GET /admin/faults``                     the fault and rate-limit settings
``PUT /admin/faults``                     replace them: names not given take start-up
                                          values
``PATCH /admin/faults``                   change only the names given
``DELETE /admin/faults``                  back to the start-up values
``GET /admin/config``                     the tenant settings
``PUT /admin/config``                     change the names given (lifetimes apply to
                                          tokens issued afterwards)
``GET /admin/users/{sid_user}``           the user's grants, families and token states
``POST /admin/users/{sid_user}/revoke``   revoke all the user's grants, as SID's
                                          dashboard does
``POST /admin/reset``                     forget everything; start-up settings again
========================================  =============================================

The admin API has no authentication: it is a test fixture, which is why the simulator
listens on loopback unless told otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from simulator.faults import FaultSettings
from simulator.overrides import described, updated
from simulator.provider import OAuthError, invalid_request
from simulator.wire import TENANT, error_response, json_object, json_response

logger = logging.getLogger("sidtokens.simulator")


async def _changes(request: web.Request) -> Mapping[str, object]:
    return json_object(await request.read())


def _refused(error: ValueError) -> web.Response:
    return error_response(invalid_request(str(error)))


async def stats(request: web.Request) -> web.Response:
    return json_response(200, request.app[TENANT].stats.snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    request.app[TENANT].stats.reset()
    return json_response(200, request.app[TENANT].stats.snapshot())


async def faults(request: web.Request) -> web.Response:
    return json_response(200, described(request.app[TENANT].faults.settings))


async def _apply_faults(request: web.Request, base: FaultSettings) -> web.Response:
    tenant = request.app[TENANT]
    try:
        settings = updated(base, await _changes(request))
    except OAuthError as error:
        return error_response(error)
    except ValueError as error:
        return _refused(error)
    tenant.apply_faults(settings)
    logger.info("faults set: %s", described(settings))
    return json_response(200, described(settings))


async def replace_faults(request: web.Request) -> web.Response:
    return await _apply_faults(request, request.app[TENANT].settings.faults)


async def change_faults(request: web.Request) -> web.Response:
    return await _apply_faults(request, request.app[TENANT].faults.settings)


async def clear_faults(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    tenant.apply_faults(tenant.settings.faults)
    return json_response(200, described(tenant.settings.faults))


async def config(request: web.Request) -> web.Response:
    return json_response(200, described(request.app[TENANT].provider.config))


async def change_config(request: web.Request) -> web.Response:
    provider = request.app[TENANT].provider
    try:
        provider.config = updated(provider.config, await _changes(request))
    except OAuthError as error:
        return error_response(error)
    except ValueError as error:
        return _refused(error)
    logger.info("config set: %s", described(provider.config))
    return json_response(200, described(provider.config))


async def user(request: web.Request) -> web.Response:
    sid_user = request.match_info["sid_user"]
    return json_response(200, request.app[TENANT].provider.describe_user(sid_user))


async def revoke_user(request: web.Request) -> web.Response:
    sid_user = request.match_info["sid_user"]
    revoked = request.app[TENANT].provider.revoke_user(sid_user)
    logger.info("revoked %d grant(s) of SID user %s", revoked, sid_user)
    return json_response(200, {"sid_user": sid_user, "grants_revoked": revoked})


async def reset(request: web.Request) -> web.Response:
    request.app[TENANT].reset()
    logger.debug("tenant reset")
    return json_response(200, {"status": "reset"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/stats", stats)
    app.router.add_post("/admin/stats/reset", reset_stats)
    app.router.add_get("/admin/faults", faults)
    app.router.add_put("/admin/faults", replace_faults)
    app.router.add_patch("/admin/faults", change_faults)
    app.router.add_delete("/admin/faults", clear_faults)
    app.router.add_get("/admin/config", config)
    app.router.add_put("/admin/config", change_config)
    app.router.add_get("/admin/users/{sid_user}", user)
    app.router.add_post("/admin/users/{sid_user}/revoke", revoke_user)
    app.router.add_post("/admin/reset", reset)
