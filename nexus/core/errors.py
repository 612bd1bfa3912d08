"""Error kinds shared by every layer. Temporal records an activity failure's type by name, so the names here are
the contract between activities (which raise), retry policies (which skip them) and the job record (which shows
them): match on `type`, never on message text."""

from __future__ import annotations


class BadInput(Exception):
    """Input that retrying cannot fix (no media at the URL, not audio, too long, deleted meanwhile...).

    Every retry policy lists its name as non-retryable, so raising it from an activity fails the step at once
    with this message as the reason.
    """


BAD_INPUT = BadInput.__name__
"""Error type name of BadInput as Temporal records it."""

NON_RETRYABLE_TYPES = [BAD_INPUT]
"""Error types no retry policy retries."""


class Unavailable(Exception):
    """A dependency (Temporal, the database) cannot answer right now: the caller should try again shortly.

    The API answers 503 with Retry-After and this message; it is never read as "not found" or "not running"."""

    def __init__(self, what: str, detail: str = "") -> None:
        self.what = what
        super().__init__(f"{what} is unavailable right now{f' ({detail})' if detail else ''}; try again shortly")
