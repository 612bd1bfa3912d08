"""MediaPipelineWorkflow: orchestration only. Every side effect happens in an activity on its queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.media import MediaActivities
    from models import MediaStatus
    from nexus.core.orchestration import MEDIA_PIPELINE_WORKFLOW, SA_MEDIA_ID, SA_STAGE, SA_USER_ID
    from nexus.media.contracts import MediaPipelineInput, MediaRef, PipelineResult, StageUpdate
    from workflows.shared import (
        COMPUTE_RETRY,
        DB_OUTAGE_BUDGET,
        DB_RETRY,
        NETWORK_RETRY,
        QUEUE_WAIT_CPU,
        QUEUE_WAIT_GPU,
        QUEUE_WAIT_LLM,
        failure_reason,
        failure_type,
    )


@workflow.defn(name=MEDIA_PIPELINE_WORKFLOW)
class MediaPipelineWorkflow:
    def __init__(self) -> None:
        self.stage: str = MediaStatus.pending

    @workflow.query
    def current_stage(self) -> str:
        return self.stage

    @workflow.run
    async def run(self, inp: MediaPipelineInput) -> PipelineResult:
        workflow.upsert_search_attributes(
            [SA_USER_ID.value_set(str(inp.user_id)), SA_MEDIA_ID.value_set(str(inp.media_id))]
        )
        ref = MediaRef(media_id=inp.media_id, job_id=inp.job_id)
        q = inp.queues
        try:
            await self._enter(inp, MediaStatus.extracting)
            await workflow.execute_activity_method(
                MediaActivities.fetch_media,
                ref,
                summary="download or take the upload, convert to 16 kHz WAV",
                task_queue=q.cpu,
                schedule_to_start_timeout=QUEUE_WAIT_CPU,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=NETWORK_RETRY,
            )
            await self._enter(inp, MediaStatus.fingerprinting)
            dedup = await workflow.execute_activity_method(
                MediaActivities.fingerprint_media,
                ref,
                summary="fingerprint, compare with the owner's items",
                task_queue=q.cpu,
                schedule_to_start_timeout=QUEUE_WAIT_CPU,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=COMPUTE_RETRY,
            )
            if dedup.duplicate_of:
                await self._enter(inp, MediaStatus.duplicate)
                return PipelineResult(status=MediaStatus.duplicate, duplicate_of=dedup.duplicate_of)
            await self._enter(inp, MediaStatus.transcribing)
            await workflow.execute_activity_method(
                MediaActivities.transcribe_media,
                ref,
                summary="transcribe (languages, speakers, word timings)",
                task_queue=q.gpu,
                schedule_to_start_timeout=QUEUE_WAIT_GPU,
                start_to_close_timeout=timedelta(hours=3),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=COMPUTE_RETRY,
            )
            await self._enter(inp, MediaStatus.enriching)
            await workflow.execute_activity_method(
                MediaActivities.enrich_media,
                ref,
                summary="title, summary, tags from the language model",
                task_queue=q.llm,
                schedule_to_start_timeout=QUEUE_WAIT_LLM,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=NETWORK_RETRY,
            )
            await self._enter(inp, MediaStatus.embedding)
            await workflow.execute_activity_method(
                MediaActivities.embed_media,
                ref,
                summary="passages and vectors for search",
                task_queue=q.cpu,
                schedule_to_start_timeout=QUEUE_WAIT_CPU,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=COMPUTE_RETRY,
            )
            await self._enter(inp, MediaStatus.completed)
            return PipelineResult(status=MediaStatus.completed)
        except (asyncio.CancelledError, CancelledError):
            await self._enter(inp, MediaStatus.cancelled, error="cancelled by the user")
            raise
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):  # the workflow's cancellation, delivered via the activity
                await self._enter(inp, MediaStatus.cancelled, error="cancelled by the user")
                raise
            reason = failure_reason(err)
            failed_stage = self.stage
            await self._enter(inp, MediaStatus.failed, error=reason, error_type=failure_type(err))
            raise ApplicationError(f"{failed_stage} failed: {reason}", type="StageFailed", non_retryable=True) from err

    async def _enter(
        self, inp: MediaPipelineInput, stage: MediaStatus, error: str | None = None, error_type: str | None = None
    ) -> None:
        self.stage = stage
        workflow.upsert_search_attributes([SA_STAGE.value_set(stage)])
        # Bookkeeping runs as a local activity in this worker: no server round trip per stage change.
        await workflow.execute_local_activity_method(
            MediaActivities.set_stage,
            StageUpdate(job_id=inp.job_id, stage=stage, error=error, error_type=error_type),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=DB_OUTAGE_BUDGET,
            retry_policy=DB_RETRY,
        )
