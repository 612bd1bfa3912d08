"""LLM providers behind one interface: Gemini, any OpenAI-compatible server, and the offline extractive default.

Provider libraries' own retries are off: Temporal retries the activity, so every attempt is visible in history.
Errors are classified once here: `ProviderError.retryable` is False for 4xx/auth (retrying cannot fix them).
"""

from __future__ import annotations

import asyncio
import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from nexus.core.settings import Settings
from nexus.llm.embeddings import Embedder

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

ENRICH_SYSTEM = (
    "You enrich transcripts of audio/video. Reply with JSON only: "
    '{"title": str, "summary": str (2-4 sentences, faithful to the transcript), "tags": [3-8 short lowercase topics], '
    '"speakers": [{"label": str, "name": str}]}. When lines start with a speaker label (S1:, S2:, ...), "speakers" '
    "names a label only when the transcript itself says who that speaker is (they introduce themselves, or are "
    'addressed by name); never guess. Otherwise "speakers" is [].'
)
SPEAKER_TURN = re.compile(r"^(S\d{1,2}): ", re.MULTILINE)
"""A transcript for enrichment has a line per speaker turn, prefixed by its label when speakers are labelled."""


class ProviderError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Enrichment(BaseModel):
    title: str | None = None
    summary: str
    tags: list[str] = Field(default_factory=list)
    speakers: dict[str, str] = Field(default_factory=dict)  # names proposed for speaker labels: suggestions
    provider: str
    model: str


class _SpeakerName(BaseModel):
    label: str
    name: str


class _EnrichmentJSON(BaseModel):
    title: str | None = None
    summary: str
    tags: list[str]
    # A list, not a mapping: Gemini's response schemas cannot express a mapping (additionalProperties).
    speakers: list[_SpeakerName] = Field(default_factory=list)


class Passage(BaseModel):
    """A retrieved transcript chunk offered to the model as context, and cited back to the user."""

    media_id: str
    title: str | None = None
    start: float
    end: float
    text: str
    at: float | None = None  # the first word matching the question, when word timings found one
    speaker: str | None = None


class ChatContext(BaseModel):
    question: str
    instruction: str | None = None  # the persona's system instruction
    memories: list[str] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    history: list[dict[str, str]] = Field(default_factory=list)  # earlier turns: {"role", "content"}
    draft: str | None = None  # sequential chains: the previous provider's answer, to improve on


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


CHAT_SYSTEM = (
    "You are Nexus, an assistant answering from the user's own archive of transcribed audio and video. "
    "Use the numbered passages when they are relevant and cite them as [1], [2]. If they do not contain the "
    "answer, say so. Facts the user told you earlier are listed under 'What you know about the user'."
)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def chat_messages(ctx: ChatContext) -> list[dict[str, str]]:
    """The prompt every generative provider gets: system rules, persona, memories, passages, history, question."""
    system = [CHAT_SYSTEM]
    if ctx.instruction:
        system.append(f"Persona instruction: {ctx.instruction}")
    if ctx.memories:
        system.append("What you know about the user:\n" + "\n".join(f"- {m}" for m in ctx.memories))
    if ctx.passages:
        system.append(
            "Passages:\n"
            + "\n".join(
                f"[{i}] ({p.title or 'untitled'}, {_clock(p.start)}-{_clock(p.end)}) {p.text}"
                for i, p in enumerate(ctx.passages, start=1)
            )
        )
    question = ctx.question
    if ctx.draft:
        question += f"\n\nA previous assistant drafted this answer; improve it:\n{ctx.draft}"
    return [{"role": "system", "content": "\n\n".join(system)}, *ctx.history, {"role": "user", "content": question}]


def speaker_suggestions(proposed: dict[str, str], transcript: str) -> dict[str, str]:
    """Names for labels the transcript has (a model may invent others), tidied and bounded."""
    labels = set(SPEAKER_TURN.findall(transcript))
    names = {label: " ".join(str(name).split())[:100] for label, name in proposed.items() if label in labels}
    return {label: name for label, name in sorted(names.items()) if name}


def clean_tags(tags: list[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        t = re.sub(r"\s+", " ", tag.strip().lower().lstrip("#").strip())[:40]
        if t and t not in seen:
            seen.append(t)
    return seen[:8]


class LLMProvider(ABC):
    name: str
    model: str

    @abstractmethod
    async def enrich(self, transcript: str) -> Enrichment: ...

    @abstractmethod
    def stream_answer(self, ctx: ChatContext, usage: Usage) -> AsyncIterator[str]:
        """Yield the answer's text as it is produced; fill `usage` when the provider reports it."""

    def _parse(self, raw: str, transcript: str) -> Enrichment:
        try:
            data = _EnrichmentJSON.model_validate(json.loads(raw))
        except (json.JSONDecodeError, ValidationError) as exc:
            # A malformed answer may be a one-off; let Temporal try again.
            raise ProviderError(f"{self.name} returned malformed JSON: {exc}", retryable=True) from exc
        return Enrichment(
            title=data.title,
            summary=data.summary,
            tags=clean_tags(data.tags),
            speakers=speaker_suggestions({s.label: s.name for s in data.speakers}, transcript),
            provider=self.name,
            model=self.model,
        )


def _status_retryable(status: int) -> bool:
    return status >= 500 or status in (408, 409, 429)


class OpenAICompatibleProvider(LLMProvider):
    """Ollama, vLLM, llama.cpp server, OpenAI itself: anything serving /v1/chat/completions."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        from openai import AsyncOpenAI

        self.model = settings.openai_model or "default"
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
        self.client = AsyncOpenAI(
            base_url=settings.openai_base_url, api_key=key, timeout=settings.llm_timeout_s, max_retries=0
        )

    def _error(self, exc: Exception) -> ProviderError:
        import openai

        if isinstance(exc, openai.APIStatusError):
            message = f"{self.name} answered HTTP {exc.status_code}: {exc.message}"
            return ProviderError(message, retryable=_status_retryable(exc.status_code))
        return ProviderError(f"{self.name} unreachable: {type(exc).__name__}: {exc}", retryable=True)

    async def enrich(self, transcript: str) -> Enrichment:
        import openai

        try:
            resp = await self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": ENRICH_SYSTEM}, {"role": "user", "content": transcript}],
                response_format={"type": "json_object"},
                temperature=0.2,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        return self._parse(resp.choices[0].message.content or "", transcript)

    async def stream_answer(self, ctx: ChatContext, usage: Usage) -> AsyncIterator[str]:
        import openai

        try:
            stream = await self.client.chat.completions.create(
                model=self.model,
                # Roles in the history come from the database as plain strings; they are "user" or "assistant".
                messages=cast("list[ChatCompletionMessageParam]", chat_messages(ctx)),
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage:
                    usage.prompt_tokens = chunk.usage.prompt_tokens
                    usage.completion_tokens = chunk.usage.completion_tokens
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc


class GeminiProvider(LLMProvider):
    name = "gemini"

    def __init__(self, settings: Settings) -> None:
        from google import genai
        from google.genai import types

        self.model = settings.gemini_model
        key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else ""
        options = types.HttpOptions(timeout=int(settings.llm_timeout_s * 1000), base_url=settings.gemini_base_url)
        self.client = genai.Client(api_key=key, http_options=options)
        self.types = types

    async def enrich(self, transcript: str) -> Enrichment:
        config = self.types.GenerateContentConfig(
            system_instruction=ENRICH_SYSTEM,
            response_mime_type="application/json",
            response_schema=_EnrichmentJSON,
            temperature=0.2,
        )
        try:
            resp = await self.client.aio.models.generate_content(model=self.model, contents=transcript, config=config)
        except Exception as exc:
            raise self._error(exc) from exc
        return self._parse(resp.text or "", transcript)

    @staticmethod
    def _error(exc: Exception) -> ProviderError:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            message = f"gemini answered HTTP {exc.code}: {exc.message}"
            return ProviderError(message, retryable=_status_retryable(int(exc.code or 500)))
        # network errors surface as httpx(2) exceptions
        return ProviderError(f"gemini unreachable: {type(exc).__name__}: {exc}", retryable=True)

    async def stream_answer(self, ctx: ChatContext, usage: Usage) -> AsyncIterator[str]:
        messages = chat_messages(ctx)
        system = messages[0]["content"]
        contents = [
            self.types.Content(
                role="model" if m["role"] == "assistant" else "user", parts=[self.types.Part(text=m["content"])]
            )
            for m in messages[1:]
        ]
        config = self.types.GenerateContentConfig(system_instruction=system)
        try:
            stream = await self.client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            async for chunk in stream:
                if chunk.usage_metadata:
                    usage.prompt_tokens = chunk.usage_metadata.prompt_token_count
                    usage.completion_tokens = chunk.usage_metadata.candidates_token_count
                if chunk.text:
                    yield chunk.text
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc


_STOPWORDS = set(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers him
    his how i if in into is it its itself just let me more most my no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with would you your yours
    also really like well yeah okay oh um uh going get got make made one two thing things way lot know think say said
    dont im thats its ive youre weve theyre cant wont""".split()
)


class ExtractiveProvider(LLMProvider):
    """No generative model: the summary is the transcript's most central sentences (embedding centroid) and the
    tags are the key phrases closest to the whole text (MMR for variety). Labelled `extractive`, honestly."""

    name = "extractive"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.model = embedder.model_name

    async def enrich(self, transcript: str) -> Enrichment:
        return await asyncio.to_thread(self._enrich, transcript)

    def _enrich(self, transcript: str) -> Enrichment:
        transcript = SPEAKER_TURN.sub("", transcript)  # extractive: the words, not who said them
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", transcript.strip()) if len(s.strip()) > 2]
        if not sentences:
            return Enrichment(title=None, summary="", tags=[], provider=self.name, model=self.model)
        vectors = self.embedder.embed(sentences)
        centroid = vectors.mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        scores = vectors @ centroid
        top = sorted(np.argsort(-scores)[: min(3, len(sentences))])
        summary = " ".join(sentences[i] for i in top)
        title = _shorten(sentences[int(np.argmax(scores))], 80)
        return Enrichment(
            title=title,
            summary=summary,
            tags=self._keyphrases(transcript, centroid),
            provider=self.name,
            model=self.model,
        )

    async def stream_answer(self, ctx: ChatContext, usage: Usage) -> AsyncIterator[str]:
        """Quote the best passages with their citations, and say plainly that nothing generative is configured."""
        parts = ["No generative model is configured, so I cannot compose an answer; "]
        if ctx.passages:
            parts.append("these passages from your archive match your question best:\n")
            for i, p in enumerate(ctx.passages[:3], start=1):
                parts.append(f'\n[{i}] "{p.text}" ({p.title or "untitled"}, {_clock(p.start)}-{_clock(p.end)})')
        else:
            parts.append("nothing in your archive matches your question.")
        if ctx.memories:
            parts.append("\n\nWhat you told me before:\n" + "\n".join(f"- {m}" for m in ctx.memories[:3]))
        for token in re.findall(r"\S+\s*|\s+", "".join(parts)):
            yield token

    def _keyphrases(self, text: str, centroid: np.ndarray) -> list[str]:
        words = re.findall(r"[a-zA-Z][a-zA-Z'-]+", text.lower())
        counts: Counter[str] = Counter()
        for i, w in enumerate(words):
            if w in _STOPWORDS or len(w) < 3:
                continue
            counts[w] += 1
            if i + 1 < len(words) and words[i + 1] not in _STOPWORDS and len(words[i + 1]) >= 3:
                counts[f"{w} {words[i + 1]}"] += 1
        candidates = [c for c, _ in counts.most_common(40)]
        if not candidates:
            return []
        vecs = self.embedder.embed(candidates)
        relevance = vecs @ centroid
        want = min(8, max(3, len(candidates) // 4), len(candidates))
        chosen: list[int] = []
        while len(chosen) < want:
            best, best_score = -1, -np.inf
            for i in range(len(candidates)):
                if i in chosen:
                    continue
                redundancy = max((float(vecs[i] @ vecs[j]) for j in chosen), default=0.0)
                score = 0.7 * float(relevance[i]) - 0.3 * redundancy
                if score > best_score:
                    best, best_score = i, score
            chosen.append(best)
        return clean_tags([candidates[i] for i in chosen])


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text.rstrip(".")
    return text[:limit].rsplit(" ", 1)[0] + "…"
