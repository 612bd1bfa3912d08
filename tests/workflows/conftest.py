"""Workflow tests on Temporal's time-skipping test server: real workflow code, mocked activities, offline.

Unlike the suite-wide fixtures in tests/conftest.py (a dev server, Postgres, real workers), nothing here touches
a database, a model or the network, and timers, retry backoffs and timeouts are skipped rather than waited for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nexus.core.orchestration import TaskQueues
from tests.workflows.mocks import start_test_env, unique_queues


@pytest.fixture(scope="session")
async def workflow_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server for the session (pydantic data converter, Nexus search attributes registered)."""
    env = await start_test_env()
    yield env
    await env.shutdown()


@pytest.fixture
def client(workflow_env: WorkflowEnvironment) -> Client:
    """A time-skipping client: while a test awaits `handle.result()`, the server skips time ahead."""
    return workflow_env.client


@pytest.fixture
async def own_client() -> AsyncIterator[Client]:
    """A client on a time-skipping server of its own (about 0.2 s to start), for a test that leaves an activity
    behind its closed workflow.

    The test server stops skipping time while any activity is running, and an activity still running when its
    workflow closes (a cancelled workflow's try-cancelled activity) never releases that lock: every later test on
    the same server would wait out its backoffs and timers in real time.
    """
    env = await start_test_env()
    yield env.client
    await env.shutdown()


@pytest.fixture
def queues() -> TaskQueues:
    return unique_queues()
