"""The FastAPI application: the only front door to Nexus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Security

from api import errors
from api.access_log import AccessLog
from api.deps import bearer_scheme
from api.limits import RequestLimits
from api.routes import account, admin, auth, chat, codec, console, health, integrations, jobs, media, metrics, search
from api.security import SecurityHeaders, StrictCORS, media_origins
from nexus.core.settings import Settings, get_settings
from nexus.llm.models import embedding_identity
from nexus.ops.fleet import stamp_store
from nexus.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or Runtime.build(settings)
        # The model digest readiness compares with the workers' (nexus/ops/fleet.py): hashed once, before the
        # first readiness probe has a 3-second budget to spend on it.
        await asyncio.to_thread(embedding_identity, app.state.runtime.settings)
        with contextlib.suppress(Exception):  # else readiness writes it, and reports why it could not
            await stamp_store(app.state.runtime.engine, app.state.runtime.store)
        # The query embedder, loaded in the background: the first search would otherwise wait for it.
        warming = asyncio.create_task(app.state.runtime.warm_up()) if owned else None
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            if owned:
                await app.state.runtime.close()

    app = FastAPI(
        title="Nexus",
        version="0.1.0",
        description=(
            "Self-hosted AI-workspace backend. Authenticate with `Authorization: Bearer <api key>`, or in a browser "
            "with the `nexus_session` cookie from `/auth/google/start` or `POST /auth/session` (state changes then "
            "need the `X-CSRF-Token` header)."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(
        StrictCORS,
        allow_origins=settings.cors_origins,
        # Credentials with a wildcard would let every site act as the signed-in user.
        allow_credentials="*" not in settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_middleware(codec.CodecCORS, settings=settings)  # outside StrictCORS: the Temporal UI, /codec/* only
    app.add_middleware(RequestLimits, settings=settings)
    app.add_middleware(AccessLog)
    app.add_middleware(SecurityHeaders, media_origins=media_origins(settings))
    errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Declares the bearer scheme in the OpenAPI schema; `get_current_user` does the checking for every route.
    documented = [Security(bearer_scheme)]
    for router in (
        account.router,
        media.router,
        jobs.router,
        search.router,
        chat.router,
        integrations.router,
        admin.router,
    ):
        app.include_router(router, dependencies=documented)
    app.include_router(jobs.ws_router)
    app.include_router(auth.router)
    app.include_router(codec.router, dependencies=documented)
    app.router.routes.extend(console.routes(settings))
    return app
