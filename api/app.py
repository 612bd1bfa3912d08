"""The FastAPI application: the only front door to Nexus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.access_log import AccessLog
from api.routes import account, chat, health, jobs, media, search
from nexus.core.settings import Settings, get_settings
from nexus.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or Runtime.build(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.runtime.close()

    app = FastAPI(
        title="Nexus",
        version="0.1.0",
        description="Self-hosted AI-workspace backend. Authenticate with `Authorization: Bearer <api key>`.",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_middleware(AccessLog)
    app.include_router(health.router)
    app.include_router(account.router)
    app.include_router(media.router)
    app.include_router(jobs.router)
    app.include_router(jobs.ws_router)
    app.include_router(search.router)
    app.include_router(chat.router)
    return app
