"""LLM providers over real HTTP on loopback: parsing, error classification, timeouts, auth headers."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from nexus.core.settings import Settings
from nexus.llm.embeddings import Embedder
from nexus.llm.providers import (
    ExtractiveProvider,
    GeminiProvider,
    LLMProvider,
    OpenAICompatibleProvider,
    ProviderError,
)
from nexus.llm.service import enrichment_provider
from tests.fake_llm import FakeLLM

TRANSCRIPT = "The lighthouse keeper counted seven ships. He lit the lamp at dusk."


@pytest.fixture
def fake():
    server = FakeLLM()
    yield server
    server.close()


def _gemini(fake: FakeLLM, timeout: float = 5) -> GeminiProvider:
    return GeminiProvider(
        Settings(gemini_api_key=SecretStr("test-key"), gemini_base_url=fake.base, llm_timeout_s=timeout)
    )


def _openai(fake: FakeLLM, timeout: float = 5) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        Settings(openai_base_url=fake.url, openai_model="llama3", openai_api_key=SecretStr("k"), llm_timeout_s=timeout)
    )


@pytest.mark.parametrize("make", [_gemini, _openai], ids=["gemini", "openai"])
async def test_provider_parses_structured_output(fake: FakeLLM, make) -> None:
    provider: LLMProvider = make(fake)
    result = await provider.enrich(TRANSCRIPT)
    assert result.summary == "A lighthouse keeper records passing ships."
    assert result.tags == ["lighthouse", "ships", "harbor"] and result.title == "Harbor log"
    assert result.provider == provider.name
    sent = fake.requests[-1]
    assert TRANSCRIPT in str(sent["body"])


async def test_gemini_request_shape(fake: FakeLLM) -> None:
    await _gemini(fake).enrich(TRANSCRIPT)
    sent = fake.requests[-1]
    assert sent["path"].endswith("/models/gemini-2.5-flash:generateContent")
    assert sent["body"]["generationConfig"]["responseMimeType"] == "application/json"
    assert (
        "responseSchema" in sent["body"]["generationConfig"] or "responseJsonSchema" in sent["body"]["generationConfig"]
    )


@pytest.mark.parametrize("make", [_gemini, _openai], ids=["gemini", "openai"])
@pytest.mark.parametrize(("code", "retryable"), [(401, False), (400, False), (429, True), (500, True), (503, True)])
async def test_errors_are_classified(fake: FakeLLM, make, code: int, retryable: bool) -> None:
    fake.fail_with = [code]
    with pytest.raises(ProviderError) as err:
        await make(fake).enrich(TRANSCRIPT)
    assert err.value.retryable is retryable
    assert str(code) in str(err.value)
    assert len(fake.requests) == 1  # library retries are off: Temporal owns retrying


@pytest.mark.parametrize("make", [_gemini, _openai], ids=["gemini", "openai"])
async def test_timeouts_are_retryable(fake: FakeLLM, make) -> None:
    fake.delay_s = 2.0
    with pytest.raises(ProviderError) as err:
        await make(fake, timeout=0.5).enrich(TRANSCRIPT)
    assert err.value.retryable


async def test_malformed_json_is_retryable(fake: FakeLLM) -> None:
    fake.content = {"no": "summary"}  # type: ignore[assignment]
    with pytest.raises(ProviderError) as err:
        await _openai(fake).enrich(TRANSCRIPT)
    assert err.value.retryable and "malformed" in str(err.value)


def test_provider_selection() -> None:
    embedder = Embedder()
    assert isinstance(enrichment_provider(Settings(), embedder), ExtractiveProvider)
    assert isinstance(
        enrichment_provider(Settings(openai_base_url="http://127.0.0.1:1/v1"), embedder), OpenAICompatibleProvider
    )
    both = Settings(openai_base_url="http://127.0.0.1:1/v1", gemini_api_key=SecretStr("k"))
    assert isinstance(enrichment_provider(both, embedder), GeminiProvider)


async def test_extractive_summary_and_tags_come_from_the_text() -> None:
    text = (
        "Volcanoes form where tectonic plates collide. Magma rises through the crust and erupts as lava. "
        "Some volcanoes stay dormant for centuries before erupting again. Scientists monitor volcanic gases."
    )
    result = await ExtractiveProvider(Embedder()).enrich(text)
    assert result.provider == "extractive"
    assert all(sentence.strip() in text for sentence in result.summary.split(". ") if sentence)
    assert 3 <= len(result.tags) <= 8
    assert any("volcan" in tag for tag in result.tags)
    empty = await ExtractiveProvider(Embedder()).enrich("")
    assert empty.summary == "" and empty.tags == []


@pytest.mark.parametrize("make", [_gemini, _openai], ids=["gemini", "openai"])
async def test_streaming_answers_arrive_in_pieces_with_usage(fake: FakeLLM, make) -> None:
    from nexus.llm.providers import ChatContext, Passage, Usage

    ctx = ChatContext(
        question="How many ships?",
        instruction="Answer like a sailor.",
        memories=["The user's sister lives in Trondheim."],
        passages=[Passage(media_id="m1", title="Log", start=0, end=4.5, text="seven ships sailed past")],
    )
    usage = Usage()
    pieces = [p async for p in make(fake).stream_answer(ctx, usage)]
    assert len(pieces) == 6 and "".join(pieces) == fake.answer
    assert usage.prompt_tokens == 42 and usage.completion_tokens == 7
    prompt = str(fake.requests[-1]["body"])
    for expected in ("How many ships?", "Answer like a sailor.", "Trondheim", "seven ships sailed past", "[1]"):
        assert expected in prompt


async def test_extractive_answer_quotes_passages_and_says_no_model() -> None:
    from nexus.llm.providers import ChatContext, Passage, Usage

    ctx = ChatContext(
        question="ships?",
        memories=["My sister lives in Trondheim"],
        passages=[Passage(media_id="m1", title="Log", start=64, end=70, text="seven ships sailed past")],
    )
    answer = "".join([t async for t in ExtractiveProvider(Embedder()).stream_answer(ctx, Usage())])
    assert answer.startswith("No generative model is configured")
    assert '[1] "seven ships sailed past" (Log, 1:04-1:10)' in answer and "Trondheim" in answer
