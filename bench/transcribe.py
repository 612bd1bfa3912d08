"""Transcription benchmark: Nexus's transcription step against faster-whisper called directly, on the same audio.

    python bench/transcribe.py [--clips 3] [--device cpu|cuda] [--diarization-only]

Makes test speech with espeak-ng: CLIPS English clips of 1-2 minutes (varied sentences), one English-then-
Spanish clip, and a two-voice "call" with one speaker per stereo channel talking over each other. Prints, per
clip: realtime factor of tiny.en called directly (beam 1, VAD; what Nexus did before) and of Nexus's step
(English pass with word timings + language audit, or per channel), word error rate of each against the text
that was spoken, the languages found, and for the call the share of words attributed to the right speaker.
The multilingual model (Whisper base) is timed alone too. `--device cuda` runs the models on a GPU (float16).

Diarization: the same two voices taking turns on one channel (a conversation of about 2 minutes), transcribed,
then told apart by `nexus.media.diarize`: the share of words attributed to the right speaker (each label mapped to
the voice most of its words came from), with the count estimated and with speakers=2, and the diarizer's realtime
factor (audio seconds per second of diarizing; the encoder loaded beforehand, transcription not counted).
`--diarization-only` runs just this part.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from common import ROOT

sys.path.insert(0, str(ROOT))

from pipeline import OBJECTS, SUBJECTS, VERBS, WHEN

if TYPE_CHECKING:
    from nexus.core.settings import Settings
    from nexus.media.transcribe import Segment

SPANISH = "Por la tarde fuimos en tren a Madrid, donde dormimos en un pequeño hotel cerca de la estación."
CALLER = "My order of garden chairs arrived broken, and I would like a replacement before the weekend."
AGENT = "Thank you for calling the support line, let me look up your account and the delivery."


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def espeak(text: str, dest: Path, voice: str = "en", speed: int = 150) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(dest), text], check=True)
    return dest


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make(out: Path, clips: int) -> list[tuple[str, Path, str]]:
    rng = random.Random(7)
    made = []
    for i in range(clips):
        text = " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)}."
            for _ in range(rng.randint(14, 22))
        )
        made.append((f"english-{i}", espeak(text, out / f"en{i}.wav"), text))
    en = espeak(" ".join(words(CALLER)), out / "en.wav")
    es = espeak(SPANISH, out / "es.wav", "es", 140)
    ffmpeg("-i", str(en), "-i", str(es), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", str(out / "en_es.wav"))
    made.append(("english+spanish", out / "en_es.wav", f"{CALLER} {SPANISH}"))
    one, two = espeak(CALLER, out / "c1.wav", "en-us"), espeak(AGENT, out / "c2.wav", "en+f3")
    mono = "aformat=sample_fmts=s16:channel_layouts=mono,apad=whole_dur=14"
    graph = f"[0:a]{mono}[a];[1:a]adelay=1500,{mono}[b];[a][b]amerge=inputs=2[out]"
    ffmpeg("-i", str(one), "-i", str(two), "-filter_complex", graph, "-map", "[out]", str(out / "call.wav"))
    made.append(("call (2 channels)", out / "call.wav", f"{CALLER} {AGENT}"))
    return made


def conversation(out: Path, turns: int = 12) -> tuple[Path, list[tuple[float, float, str]]]:
    """The call's two voices taking turns of 2-3 sentences on one channel: the clip (16 kHz mono) and its turns
    as (start, end, voice)."""
    rng = random.Random(11)
    parts, spans, at = [], [], 0.0
    for i in range(turns):
        voice = ("en-us", "en+f3")[i % 2]
        text = " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)}."
            for _ in range(rng.randint(2, 3))
        )
        part = espeak(text, out / f"turn{i}.wav", voice, 165)
        with wave.open(str(part), "rb") as w:
            seconds = w.getnframes() / w.getframerate()
        parts.append(part)
        spans.append((at, at + seconds, voice))
        at += seconds
    clip = out / "conversation.16k.wav"
    inputs = [arg for part in parts for arg in ("-i", str(part))]
    graph = "".join(f"[{i}:a]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1[out]"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[out]", "-ac", "1", "-ar", "16000", str(clip))
    return clip, spans


def attributed(segments: list[Segment], turns: list[tuple[float, float, str]]) -> tuple[int, int, int]:
    """Words attributed to the right voice (each label standing for the voice most of its words came from), all
    words, and the number of labels."""
    said = []
    for seg in segments:
        for w in seg.words:
            middle = (w.start + w.end) / 2
            voice = min(
                turns, key=lambda t: 0.0 if t[0] <= middle <= t[1] else min(abs(middle - t[0]), abs(middle - t[1]))
            )
            said.append((seg.speaker, voice[2]))
    mapping = {label: Counter(v for lab, v in said if lab == label).most_common(1)[0][0] for label, _v in said}
    return sum(mapping[label] == voice for label, voice in said), len(said), len(mapping)


def diarization(settings: Settings, root: Path) -> None:
    from nexus.media.diarize import diarize, load_encoder
    from nexus.media.transcribe import SAMPLE_RATE, load_audio, transcribe

    clip, turns = conversation(root)
    samples = load_audio(clip)
    duration = len(samples) / SAMPLE_RATE
    transcript = transcribe(settings, clip)
    started = time.monotonic()
    load_encoder(settings)
    loaded_s = time.monotonic() - started
    figures = []
    for speakers in (None, 2):
        started = time.monotonic()
        labelled = diarize(settings, samples, transcript.segments, speakers=speakers)
        figures.append((*attributed(labelled, turns), time.monotonic() - started))
    (right, total, found, spent), (right2, total2, _found2, _spent2) = figures
    print(
        f"\nDiarization, two voices taking turns on one channel ({duration:.0f} s, {len(turns)} turns, {total} words):"
    )
    print(
        f"{'':22} speakers found: {found} (estimated); words attributed to the right speaker: "
        f"{right}/{total} ({right / total:.0%}); told speakers=2: {right2}/{total2} ({right2 / total2:.0%})"
    )
    print(f"{'':22} diarizer {duration / spent:.1f}x realtime (encoder loaded once per process in {loaded_s:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--diarization-only", action="store_true", help="run only the diarization figures")
    args = parser.parse_args()

    from nexus.core.settings import Settings
    from nexus.media.fetch import to_channels_wav
    from nexus.media.transcribe import load_model, load_multilingual, transcribe, transcribe_channels

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "var", whisper_device=args.device)
        if args.diarization_only:
            print(f"device {args.device}; models: tiny.en (English), resemblyzer voice encoder")
            diarization(settings, root)
            return
        tiny, base = load_model(settings), load_multilingual(settings)
        clips = make(root, args.clips)
        transcribe(settings, clips[0][1])  # warm both models' first calls
        print(f"device {args.device}; models: tiny.en (English), Whisper base (multilingual)\n")
        header = ("clip", "audio", "direct RTF", "Nexus RTF", "WER direct", "WER Nexus")
        print(f"{header[0]:22} {header[1]:>6} {header[2]:>10} {header[3]:>9} {header[4]:>10} {header[5]:>9}  languages")
        totals = {"audio": 0.0, "direct": 0.0, "nexus": 0.0}
        for name, path, text in clips:
            wav = root / f"{path.stem}.16k.wav"
            ffmpeg("-i", str(path), "-ac", "1", "-ar", "16000", str(wav))
            started = time.monotonic()
            raw, info = tiny.transcribe(str(wav), vad_filter=True, beam_size=1)
            direct_text = " ".join(s.text for s in raw)
            direct_s = time.monotonic() - started
            split = root / f"{path.stem}.channels.wav"
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "stream=channels", "-of", "csv=p=0", str(path)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            started = time.monotonic()
            if to_channels_wav(path, split, int(probe.split()[0])):
                result = transcribe_channels(settings, split)
            else:
                result = transcribe(settings, wav)
            nexus_s = time.monotonic() - started
            nexus_text = " ".join(s.text for s in result.segments)
            langs = ", ".join(f"{k} {v:.0f}s" for k, v in result.languages.items())
            print(
                f"{name:22} {info.duration:5.0f}s {info.duration / direct_s:9.1f}x {info.duration / nexus_s:8.1f}x "
                f"{wer(text, direct_text):10.2f} {wer(text, nexus_text):9.2f}  {langs}"
            )
            if name.startswith("english-"):
                totals["audio"] += info.duration
                totals["direct"] += direct_s
                totals["nexus"] += nexus_s
            if name.startswith("call"):
                right = {"S1": set(words(CALLER)) - set(words(AGENT)), "S2": set(words(AGENT)) - set(words(CALLER))}
                said = [(s.speaker, w) for s in result.segments for w in words(s.text)]
                judged = [(sp, w) for sp, w in said if any(w in r for r in right.values())]
                correct = sum(1 for sp, w in judged if w in right.get(sp or "", set()))
                print(f"{'':22} words attributed to the right speaker: {correct}/{len(judged)}")
                mixed = " ".join(words(direct_text))
                found = {k: sum(w in mixed for w in v) / len(v) for k, v in right.items()}
                print(f"{'':22} mono mix (direct): share of each speaker's own words heard: "
                      f"S1 {found['S1']:.0%}, S2 {found['S2']:.0%}")  # fmt: skip
        print(
            f"\nEnglish clips together: direct {totals['audio'] / totals['direct']:.1f}x, "
            f"Nexus {totals['audio'] / totals['nexus']:.1f}x realtime "
            f"(Nexus / direct time: {totals['nexus'] / totals['direct']:.2f})"
        )
        if base is not None:
            en_es = next(p for n, p, _ in clips if n.startswith("english+"))
            started = time.monotonic()
            raw, info = base.transcribe(str(en_es), multilingual=True, condition_on_previous_text=False, beam_size=1)
            list(raw)
            print(
                f"Whisper base alone on the English+Spanish clip: {info.duration / (time.monotonic() - started):.1f}x"
            )
        diarization(settings, root)


if __name__ == "__main__":
    main()
