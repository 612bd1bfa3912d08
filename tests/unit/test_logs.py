"""Log lines written inside an activity name their run, whichever logger wrote them."""

from __future__ import annotations

import dataclasses
import json
import logging

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from nexus.core.logs import ActivityContext, JsonFormatter, TextFormatter


def _records() -> tuple[logging.Logger, list[logging.LogRecord]]:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.addFilter(ActivityContext())
    logger = logging.getLogger(f"test.logs.{id(seen)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, seen


async def test_a_line_logged_in_an_activity_carries_its_run_and_one_outside_does_not() -> None:
    logger, seen = _records()

    @activity.defn(name="media.transcribe")
    async def work() -> None:
        logger.info("transcribing %s", "clip.wav")

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type="media.transcribe", workflow_id="media-123")
    await env.run(work)
    logger.info("outside")
    inside, outside = (json.loads(JsonFormatter().format(r)) for r in seen)
    assert inside["msg"] == "transcribing clip.wav" and inside["activity"] == "media.transcribe"
    assert inside["workflow_id"] == "media-123"
    assert {"workflow_id", "run_id", "attempt", "task_queue"} <= set(inside) and inside["level"] == "info"
    assert outside == {k: outside[k] for k in ("ts", "level", "logger", "msg")}
    text = TextFormatter().format(seen[0])
    assert text.endswith(f"[media.transcribe {inside['workflow_id']} run={inside['run_id']} attempt=1]")
