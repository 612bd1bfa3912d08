"""Operator actions on the live stack: find failed runs across users and retry them all from the step that
stopped them, proving from the runs' histories that no finished step did its work again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
from temporalio.client import Client

from nexus.runtime import Runtime
from tests.conftest import MakeAccount, follow_job, overridden
from tests.e2e.test_media_cli import _nexus
from tests.e2e.test_media_pipeline import activity_results, ingest_upload
from tests.fake_llm import FakeLLM
from tests.harness import LiveServer


async def test_failed_runs_are_found_and_retried_in_bulk_without_redoing_finished_steps(
    api: httpx.AsyncClient,
    live_api: LiveServer,
    runtime: Runtime,
    make_account: MakeAccount,
    clips: dict[str, Path],
    temporal_client: Client,
) -> None:
    admin, user = await make_account(admin=True), await make_account()
    fake = FakeLLM()
    fake.fail_with = [401, 401]  # the language model refuses both items' enrichment (not retryable)
    try:
        with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
            runs = await asyncio.gather(
                ingest_upload(api, user.headers, clips["a_wav"]), ingest_upload(api, user.headers, clips["b_wav"])
            )
            assert [events[-1]["stage"] for _, events in runs] == ["failed", "failed"]
            jobs = {submitted["job_id"] for submitted, _ in runs}

            query = {"owner_id": str(user.user.id), "stage": "enriching", "error_contains": "HTTP 401"}
            refused = await api.get("/api/admin/jobs", params=query, headers=user.headers)
            assert refused.status_code == 403 and "admin role" in refused.json()["detail"]
            listed = (await api.get("/api/admin/jobs", params=query, headers=admin.headers)).json()
            assert {j["id"] for j in listed} == jobs and {j["failed_stage"] for j in listed} == {"enriching"}
            assert (
                await api.get("/api/admin/jobs", params={**query, "stage": "transcribing"}, headers=admin.headers)
            ).json() == []
            dry = await api.post("/api/admin/jobs/retry", json={**query, "dry_run": True}, headers=admin.headers)
            assert dry.status_code == 200 and dry.json()["done"] == [] and len(dry.json()["matched"]) == 2

            env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
            env.update(NEXUS_API_URL=live_api.url, NEXUS_API_KEY=admin.token, COLUMNS="160")
            args = ["--owner", str(user.user.id), "--stage", "enriching", "--error-contains", "HTTP 401"]
            code, out = await _nexus(env, "jobs", "retry", *args)
            assert code == 0 and "2 matching run(s)" in out and "2 retried" in out, out
            finals = await asyncio.gather(*(follow_job(api, user.headers, job) for job in jobs))
            assert [events[-1]["stage"] for events in finals] == ["completed", "completed"]
    finally:
        fake.close()
    for submitted, _ in runs:  # the retried run reused the download and the transcript; only enrichment ran
        workflow_id = submitted["workflow_id"]
        desc = await temporal_client.get_workflow_handle(workflow_id).describe()  # what the Temporal UI shows
        assert (await desc.static_summary() or "").startswith("Process ") and ".wav" in (
            await desc.static_summary() or ""
        )
        assert submitted["media_id"] in (await desc.static_details() or "")
        assert [r["reused"] for r in await activity_results(temporal_client, workflow_id, "media.fetch")] == [True]
        assert [r["reused"] for r in await activity_results(temporal_client, workflow_id, "media.transcribe")] == [True]
        assert [r["reused"] for r in await activity_results(temporal_client, workflow_id, "media.enrich")] == [False]
    enrichments = [r for r in fake.requests if "response_format" in r["body"]]
    assert len(enrichments) == 4  # two refused, two answered: one call per item per run
