"""The runtime and flow store one web process builds, reachable from any request."""

from __future__ import annotations

from flask import Flask, current_app

from shared.runtime import Runtime
from web.oauth_state import FlowStore

#: Where the handles live in ``app.extensions``.
RUNTIME = "sidtokens.runtime"
FLOWS = "sidtokens.flows"


def install(app: Flask, runtime: Runtime) -> None:
    """Attach ``runtime`` and a flow store on its Redis to ``app``."""
    app.extensions[RUNTIME] = runtime
    app.extensions[FLOWS] = FlowStore(
        runtime.cache.client,
        max_age_seconds=runtime.settings.oauth_flow_max_age_seconds,
    )


def runtime() -> Runtime:
    """The current application's runtime: settings, database, cache, SID client."""
    found: Runtime = current_app.extensions[RUNTIME]
    return found


def flows() -> FlowStore:
    """The current application's store of connect flows in progress."""
    found: FlowStore = current_app.extensions[FLOWS]
    return found
