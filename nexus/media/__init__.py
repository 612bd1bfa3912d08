"""Media domain: fetching, probing, converting, fingerprinting, transcribing, chunking."""


class BadInput(Exception):
    """Input that retrying cannot fix (no media at the URL, not audio, too long...).

    Temporal records the failure type as the class name; every retry policy lists "BadInput" as non-retryable,
    so raising it from an activity fails the step at once with this message as the reason.
    """
