"""Temporal client factory: one place that knows the address, namespace and data converter."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from nexus.core.codec import data_converter
from nexus.core.errors import Unavailable
from nexus.core.settings import Settings

RPC_TIMEOUT = timedelta(seconds=5)
"""For calls a request waits on (start, describe, cancel): a frozen server answers 503 in seconds, not minutes."""


async def connect(settings: Settings) -> Client:
    """The client every Nexus process uses (workers take its data converter): pydantic payloads, encrypted in
    Temporal's store (nexus/core/codec.py)."""
    if settings.embedded_temporal:
        settings.require_shared()
    return await asyncio.wait_for(
        Client.connect(
            settings.temporal_target,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
        ),
        RPC_TIMEOUT.total_seconds(),
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register Nexus's search attributes on an external server (the embedded one gets them at start-up)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    from nexus.core.orchestration import SEARCH_ATTRIBUTES

    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


_ENDED_OUTSIDE: dict[WorkflowExecutionStatus, str] = {
    WorkflowExecutionStatus.TERMINATED: "the run was terminated outside Nexus (Temporal UI/CLI)",
    WorkflowExecutionStatus.TIMED_OUT: "the run timed out",
    WorkflowExecutionStatus.FAILED: "the run failed; see its history in the Temporal UI",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}


def ended_outside(status: WorkflowExecutionStatus) -> tuple[bool, str]:
    """How a closed run that did not record its own end (terminated in the Temporal UI, its last step unable to
    reach Postgres) is reported by the job or turn it ran: (whether it was cancelled, else it failed; the reason)."""
    return status == WorkflowExecutionStatus.CANCELED, _ENDED_OUTSIDE.get(status, f"the run ended as {status.name}")


async def run_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The latest run's status, or None when Temporal has no run under this id. Any other failure to answer is
    `Unavailable`: an unreachable server must never read as "not running"."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise Unavailable("Temporal", exc.message) from exc
    return desc.status


async def is_running(client: Client, workflow_id: str) -> bool:
    return await run_status(client, workflow_id) == WorkflowExecutionStatus.RUNNING


async def cancel(client: Client, workflow_id: str) -> bool:
    """Request cancellation; the workflow records `cancelled` itself. False when nothing was running."""
    if not await is_running(client, workflow_id):
        return False
    try:
        await client.get_workflow_handle(workflow_id).cancel(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise Unavailable("Temporal", exc.message) from exc
    return True


SUMMARY_BYTES = 250
"""Temporal limits a run's summary (400 bytes as stored; the payload codec adds ~90): room to spare."""


def ui_summary(text: str) -> str:
    """One line for the Temporal UI, clamped to SUMMARY_BYTES of UTF-8 (never mid-character)."""
    line = " ".join(text.split())
    encoded = line.encode()
    if len(encoded) <= SUMMARY_BYTES:
        return line
    return encoded[: SUMMARY_BYTES - 3].decode(errors="ignore") + "…"
