"""Pipeline overhead benchmark: the same clips through the Temporal stack and through direct calls.

    python bench/pipeline.py                 # against a running `make up` stack (NEXUS_API_URL / dev key)
    python bench/pipeline.py --start-stack   # starts a throwaway `nexus up` on free ports first

Prints, for N fresh 1-2 minute speech clips (espeak-ng): wall time through the stack (upload -> completed, one
at a time), wall time of the same steps called directly in one process (convert, fingerprint, transcribe,
enrich, embed; models warmed first, as the workers' are), their ratio (goal <= 1.15) and realtime factors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import start_stack

SUBJECTS = [
    "The engineer",
    "A farmer",
    "Our neighbour",
    "The teacher",
    "A young pilot",
    "The museum guide",
    "My grandmother",
    "The ferry captain",
    "A tired student",
    "The city council",
    "The baker",
    "A journalist",
]
VERBS = [
    "repaired",
    "painted",
    "described",
    "photographed",
    "measured",
    "carried",
    "ordered",
    "cleaned",
    "borrowed",
    "forgot",
    "examined",
    "delivered",
]
OBJECTS = [
    "an old wooden bridge",
    "the red tractor",
    "a map of the northern islands",
    "three crates of apples",
    "the broken church clock",
    "a letter from the mayor",
    "the blue sailing boat",
    "a basket of fresh bread",
    "the school library",
    "a heavy iron kettle",
    "the harbour lighthouse",
    "a box of paper lanterns",
]
WHEN = [
    "on Monday morning",
    "before the storm",
    "after the long winter",
    "during the festival",
    "at midnight",
    "last summer",
    "in the early spring",
    "while it was raining",
    "just before lunch",
    "on the first of May",
]


def make_clips(n: int, out: Path, seed: int = 0) -> list[Path]:
    """Distinct texts per seed, so no clip is a near-duplicate of another (dedup would stop the pipeline)."""
    clips = []
    for i in range(n):
        rng = random.Random(seed + i)
        # Varied sentences: repetitive text makes Whisper fall back to sampling, and timings to scatter.
        count = 16 + 6 * (i % 3)  # ~60-110 s of speech
        text = " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)}."
            for _ in range(count)
        )
        wav = out / f"clip{i}.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        mp3 = out / f"clip{i}.mp3"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "96k", str(mp3)], check=True, capture_output=True
        )
        clips.append(mp3)
    return clips


def direct(clips: list[Path]) -> tuple[float, list[float]]:
    """The pipeline's steps, called in-process with no Temporal, no database, no object store."""
    from nexus.core.settings import Settings
    from nexus.llm.embeddings import Embedder
    from nexus.llm.providers import ExtractiveProvider
    from nexus.media.chunking import chunk_segments
    from nexus.media.fetch import probe, to_speech_wav
    from nexus.media.fingerprint import fingerprint_file
    from nexus.media.transcribe import load_model, transcribe

    settings = Settings()
    embedder = Embedder(settings.embedding_model)
    load_model(settings), embedder.embed(["warm up"])
    per_clip = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            started = time.perf_counter()
            probe(clip)
            wav = Path(tmp) / f"{clip.stem}.wav"
            to_speech_wav(clip, wav)
            fingerprint_file(wav)
            result = transcribe(settings, wav)
            text = " ".join(s.text for s in result.segments)
            asyncio.run(ExtractiveProvider(embedder).enrich(text))
            passages = chunk_segments([(s.start, s.end, s.text) for s in result.segments])
            embedder.embed([p.text for p in passages])
            per_clip.append(time.perf_counter() - started)
    return sum(per_clip), per_clip


def through_stack(clips: list[Path]) -> tuple[float, list[float]]:
    from nexus.client import NexusClient
    from nexus.core.settings import Settings

    client = NexusClient(Settings())
    per_clip = []
    for clip in clips:
        started = time.perf_counter()
        submitted = client.submit(str(clip), title=clip.stem)
        final = list(client.events(submitted["job_id"]))[-1]
        if final["stage"] != "completed":
            raise SystemExit(f"{clip.name}: {final['stage']}: {final.get('message')}")
        per_clip.append(time.perf_counter() - started)
    return sum(per_clip), per_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--start-stack", action="store_true", help="start a throwaway stack on free ports")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory() as tmp:
        seed = random.randrange(1 << 30)  # fresh texts each run: earlier runs' clips must not count as duplicates
        clips = make_clips(args.clips, Path(tmp), seed=seed)
        audio_s = sum(float(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(c)],
            capture_output=True, text=True, check=True,
        ).stdout) for c in clips)  # fmt: skip
        stack = start_stack(Path(tmp) / "var") if args.start_stack else None
        try:
            # Warm the workers' models with one throwaway clip so both sides are measured warm.
            warm = Path(tmp) / "warm"
            warm.mkdir()
            through_stack(make_clips(1, warm, seed=seed + 1000))
            stack_total, stack_each = through_stack(clips)
        finally:
            if stack:
                stack.send_signal(signal.SIGINT)
                stack.wait(30)
        direct_total, direct_each = direct(clips)

    p50 = statistics.median
    print(f"clips: {len(clips)}, audio: {audio_s:.0f} s")
    print(f"direct (one process, no Temporal): {direct_total:6.2f} s  (per clip p50 {p50(direct_each):.2f} s)")
    print(f"through the stack (API+Temporal):  {stack_total:6.2f} s  (per clip p50 {p50(stack_each):.2f} s)")
    print(f"ratio stack/direct: {stack_total / direct_total:.2f}  (goal <= 1.15)")
    print(f"realtime factor: stack {audio_s / stack_total:.1f}x, direct {audio_s / direct_total:.1f}x (audio s/wall s)")


if __name__ == "__main__":
    main()
