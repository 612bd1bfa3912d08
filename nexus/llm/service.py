"""Which providers a deployment has, and the one place a provider is chosen and built by name."""

from __future__ import annotations

from nexus.core.settings import Settings
from nexus.llm.embeddings import Embedder
from nexus.llm.providers import (
    ExtractiveProvider,
    GeminiProvider,
    LLMProvider,
    OpenAICompatibleProvider,
    ProviderError,
)


def configured_providers(settings: Settings) -> list[str]:
    """Provider names usable with these settings, preferred first; `extractive` is always available."""
    names = []
    if settings.gemini_api_key:
        names.append("gemini")
    if settings.openai_base_url:
        names.append("openai")
    return [*names, "extractive"]


def make_provider(name: str, settings: Settings, embedder: Embedder) -> LLMProvider:
    if name not in configured_providers(settings):
        raise ProviderError(f"provider {name!r} is not configured", retryable=False)
    if name == "gemini":
        return GeminiProvider(settings)
    if name == "openai":
        return OpenAICompatibleProvider(settings)
    return ExtractiveProvider(embedder)


def enrichment_provider(settings: Settings, embedder: Embedder) -> LLMProvider:
    return make_provider(configured_providers(settings)[0], settings, embedder)


def describe_providers(settings: Settings) -> str:
    """The providers and models this host would use, for comparing hosts (never a key): `gemini:gemini-2.5-flash,
    extractive`. Two hosts that differ here answer the same request differently."""
    models = {"gemini": settings.gemini_model, "openai": f"{settings.openai_base_url}#{settings.openai_model or ''}"}
    return ",".join(f"{n}:{models[n]}" if n in models else n for n in configured_providers(settings))
