"""The registry of embedding models: the index's active model is known by digest, a process configured with another
model neither writes vectors nor passes readiness, and operators see it at `GET /api/admin/embeddings`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from models import MediaChunk
from nexus.llm import registry
from nexus.llm.models import ModelIdentity, embedding_identity, embedding_model_path
from nexus.ops.service import check_workers
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def test_the_shipped_model_is_adopted_and_reported(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    identity = embedding_identity(runtime.settings)
    active = await registry.require_active(runtime.engine, identity)
    assert (active.name, active.digest, active.dims, active.status) == (
        "all-MiniLM-L6-v2",
        identity.digest,
        384,
        "active",
    )

    admin, user = await make_account(admin=True), await make_account()
    assert (await api.get("/api/admin/embeddings", headers=user.headers)).status_code == 403
    body = (await api.get("/api/admin/embeddings", headers=admin.headers)).json()
    async with runtime.engine.connect() as conn:
        chunks = (await conn.execute(select(func.count()).select_from(MediaChunk))).scalar_one()
    assert body["agrees"] is True and body["configured"] == str(identity)
    (model,) = body["models"]
    assert model["status"] == "active" and model["digest"] == identity.digest and model["chunks"] == chunks


async def test_another_model_is_refused_by_name(runtime: Runtime) -> None:
    other = ModelIdentity("all-mpnet-base-v2", "f" * 64, 768)
    with pytest.raises(registry.ModelMismatch) as refused:
        await registry.require_active(runtime.engine, other)
    message = str(refused.value)
    assert "all-mpnet-base-v2@ffffffffffff/768d" in message and "all-MiniLM-L6-v2@" in message
    # The refusal changed nothing: the active model keeps its digest.
    active = await registry.adopt(runtime.engine, embedding_identity(runtime.settings))
    assert active.digest == embedding_identity(runtime.settings).digest


async def test_readiness_fails_when_this_process_has_another_model(runtime: Runtime, tmp_path: Path) -> None:
    """The same files plus one: another digest, so another model as far as the index can tell."""
    shipped = embedding_model_path(runtime.settings)
    other = tmp_path / "all-MiniLM-L6-v2"
    other.mkdir()
    for item in shipped.iterdir():
        (other / item.name).symlink_to(item)
    (other / "retrained.txt").write_text("fine-tuned on something else\n")
    configured = Runtime(
        settings=runtime.settings.model_copy(update={"embedding_model": str(other)}),
        engine=runtime.engine,
        store=runtime.store,
        queues=runtime.queues,
        database_url=runtime.database_url,
    )
    check = await check_workers(configured, await runtime.temporal())
    assert not check.ok
    assert "the search index holds vectors of all-MiniLM-L6-v2@" in check.detail
    assert "set NEXUS_EMBEDDING_MODEL" in check.detail
