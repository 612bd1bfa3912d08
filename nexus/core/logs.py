"""Log output for every Nexus process: plain text by default, or one JSON object per line
(`NEXUS_LOG_FORMAT=json`) for a log pipeline. Inside an activity, every record (whatever logger wrote it: ours,
httpx, faster-whisper) carries the run it belongs to: workflow id, run id, activity name, attempt, task queue;
so an operator can go from a log line straight to the run in the Temporal UI."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from temporalio import activity

ACTIVITY_FIELDS = ("workflow_id", "run_id", "activity", "attempt", "task_queue")


class ActivityContext(logging.Filter):
    """Adds the current activity's identity to records logged while it runs (nothing outside activities)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if activity.in_activity():
            info = activity.info()
            record.workflow_id = info.workflow_id
            record.run_id = info.workflow_run_id
            record.activity = info.activity_type
            record.attempt = info.attempt
            record.task_queue = info.task_queue
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line |= {f: getattr(record, f) for f in ACTIVITY_FIELDS if hasattr(record, f)}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if hasattr(record, "activity"):
            ids = vars(record)
            text += f" [{ids['activity']} {ids['workflow_id']} run={ids['run_id']} attempt={ids['attempt']}]"
        return text


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ActivityContext())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
