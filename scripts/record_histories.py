"""Record the workflow histories that tests/workflows/test_replay.py replays.

Runs every scenario of tests/workflows/scenarios.py (the real workflows, mocked activities) on Temporal's
time-skipping test server, offline, and writes each run's history to tests/workflows/histories/<scenario>.json.

    .venv/bin/python scripts/record_histories.py            # all scenarios
    .venv/bin/python scripts/record_histories.py chat_happy # some

Re-record only for an intended change to what a workflow does; a history recorded from the old code is what
proves that code still replays (keep it under a new name while old runs may still be open).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter  # noqa: E402

from tests.workflows.mocks import start_test_env  # noqa: E402
from tests.workflows.scenarios import HISTORIES, SCENARIOS, history_json  # noqa: E402


async def record(names: list[str]) -> None:
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    HISTORIES.mkdir(exist_ok=True)
    env = await start_test_env()
    try:
        for name in names:
            scenario = SCENARIOS[name]
            handle = await scenario.run(env.client)
            status = (await handle.describe()).status
            if status != scenario.expected:
                raise SystemExit(f"{name}: ended {status.name if status else None}, expected {scenario.expected.name}")
            history = await handle.fetch_history()
            path = HISTORIES / f"{name}.json"
            path.write_text(history_json(history))
            print(f"{path.relative_to(ROOT)}: {len(history.events)} events, {status.name.lower()}")
    finally:
        await env.shutdown()


def main() -> int:
    # Quiet: the scripted activity failures are logged as warnings, and the SDK's core warns that the test server
    # does not advertise a capability it cannot have.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet))))
    asyncio.run(record(sys.argv[1:] or list(SCENARIOS)))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the SDK's Rust threads can abort a finalizing interpreter ("PyGILState_Release:
    # thread state ... must be current", temporalio/sdk-python#300) after all the work is done.
    os._exit(code)
