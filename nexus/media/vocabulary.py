"""What a user tells transcription: the language, their vocabulary (names, products, jargon) and a prompt.

Checked when the work is submitted and snapshotted into the item (`media_items.transcription`), so what was
applied is visible in the item's record and a retry applies the same thing.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import Vocabulary
from models.base import utcnow
from nexus.core.errors import BadInput
from nexus.core.settings import Settings

MAX_TERM_CHARS = 60
MODELS = ("fast", "multilingual")  # see nexus.media.transcribe.Options
MAX_SPEAKERS = 10


# The languages Whisper knows (faster_whisper.tokenizer._LANGUAGE_CODES; a unit test keeps them in step). Listed
# here so the API process checks a code without importing faster-whisper and its native libraries.
WHISPER_LANGUAGES = frozenset(
    """
    af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu
    hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt
    ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue
    """.split()
)


NO_SPACES = frozenset({"zh", "ja", "th", "lo", "my", "km", "yue", "bo"})
"""Languages written without spaces between words: their words are joined without one."""


def whisper_languages() -> frozenset[str]:
    return WHISPER_LANGUAGES


def check_language(code: str | None) -> str | None:
    if code is None or not code.strip():
        return None
    code = code.strip().lower()
    if code not in whisper_languages():
        raise BadInput(f"unknown language {code!r}: use a code Whisper knows, such as en, de, es, fr, it, ja")
    return code


def clean_terms(terms: list[str], settings: Settings) -> list[str]:
    """Terms trimmed, de-duplicated (case-insensitively, first spelling wins) and bounded."""
    seen: dict[str, str] = {}
    for raw in terms:
        term = " ".join(str(raw).split())
        if not term:
            continue
        if len(term) > MAX_TERM_CHARS:
            raise BadInput(f"vocabulary term {term[:20]!r}... is longer than {MAX_TERM_CHARS} characters")
        if any(unicodedata.category(ch).startswith("C") for ch in term):
            raise BadInput(f"vocabulary term {term[:20]!r} contains control characters")
        seen.setdefault(term.casefold(), term)
    if len(seen) > settings.max_vocabulary_terms:
        raise BadInput(f"at most {settings.max_vocabulary_terms} vocabulary terms (got {len(seen)})")
    return list(seen.values())


def split_terms(text: str | None) -> list[str]:
    """Terms from a form field: comma- or newline-separated."""
    return [t for t in (text or "").replace("\n", ",").split(",") if t.strip()]


async def get_terms(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    row = await session.get(Vocabulary, user_id)
    return list(row.terms) if row else []


async def set_terms(session: AsyncSession, user_id: uuid.UUID, terms: list[str]) -> None:
    stmt = insert(Vocabulary).values(user_id=user_id, terms=terms, updated_at=utcnow())
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["user_id"], set_={"terms": terms, "updated_at": utcnow()})
    )


async def transcription_request(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    language: str | None = None,
    vocabulary: list[str] | None = None,
    prompt: str | None = None,
    model: str | None = None,
    speakers: int | None = None,
    translate: bool | None = None,
) -> dict[str, Any]:
    """What this item's transcription will apply: the user's vocabulary plus this upload's terms, checked; the
    model (`fast` unless told otherwise) and the number of speakers, when given."""
    terms = clean_terms([*await get_terms(session, user_id), *(vocabulary or [])], settings)
    prompt = " ".join((prompt or "").split()) or None
    if prompt and len(prompt) > settings.max_prompt_chars:
        raise BadInput(f"the prompt is longer than {settings.max_prompt_chars} characters")
    if model not in (None, *MODELS):
        raise BadInput(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
    if speakers is not None and not 1 <= speakers <= MAX_SPEAKERS:
        raise BadInput(f"speakers must be between 1 and {MAX_SPEAKERS}")
    request: dict[str, Any] = {
        "language": check_language(language),
        "vocabulary": terms,
        "prompt": prompt,
        "model": model,
        "speakers": speakers,
        "translate": translate,
    }
    return {k: v for k, v in request.items() if v is not None and v not in ("", [])}
