"""Chat turn overhead benchmark with the offline (extractive) provider.

    python bench/chat.py [--start-stack] [--turns 30]

For each turn: time to first token (request sent -> first `token` event) and overhead = total turn time minus
the provider's own generation time (stored as `latency_ms` on the answer), i.e. what memory search, retrieval,
the workflow and streaming cost. Goal: overhead p50 <= 200 ms. One clip is ingested first so retrieval has data,
and three warm-up turns are not counted; the first one's time to first token is printed on its own (on a fresh
stack: what a user's first question waits).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import start_stack

QUESTIONS = [
    "What did the keeper write in the notebook?",
    "When did the ships sail past?",
    "What do you need to bake bread?",
    "Tell me about the lighthouse.",
    "How long should dough rise?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--start-stack", action="store_true")
    args = parser.parse_args()

    from nexus.client import NexusClient
    from nexus.core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp) / "var") if args.start_stack else None
        try:
            client = NexusClient(Settings())
            clip = Path(tmp) / "clip.wav"
            text = "The lighthouse keeper counted seven ships at dawn and wrote their names in a notebook. " * 3
            subprocess.run(["espeak-ng", "-w", str(clip), text], check=True, capture_output=True)
            submitted = client.submit(str(clip), title="bench clip")
            list(client.events(submitted["job_id"]))

            ttft, overhead, total = [], [], []
            first_turn = 0.0
            for i in range(args.turns + 3):
                started = time.perf_counter()
                first = None
                conversation = ""
                body = {"message": QUESTIONS[i % len(QUESTIONS)], "providers": ["extractive"]}
                for kind, data in client.sse("POST", "/api/chat", json=body):
                    if kind == "token" and first is None:
                        first = time.perf_counter() - started
                    if kind == "turn":
                        conversation = data["conversation_id"]
                elapsed = time.perf_counter() - started
                if i == 0:
                    first_turn = (first or elapsed) * 1000
                if i < 3:
                    continue
                messages = client.request("GET", f"/api/conversations/{conversation}/messages")
                provider_ms = messages[-1]["latency_ms"] or 0
                ttft.append((first or elapsed) * 1000)
                total.append(elapsed * 1000)
                overhead.append(elapsed * 1000 - provider_ms)
        finally:
            if stack:
                stack.send_signal(signal.SIGINT)
                stack.wait(30)

    def line(name: str, values: list[float]) -> str:
        return f"{name:30} p50 {np.percentile(values, 50):7.1f} ms   p95 {np.percentile(values, 95):7.1f} ms"

    print(f"turns: {len(total)} (offline extractive provider)")
    print(f"{'first turn, time to first token':30} {first_turn:7.1f} ms")
    print(line("time to first token", ttft))
    print(line("turn total (to final event)", total))
    print(line("overhead (total - provider)", overhead) + "   (goal p50 <= 200 ms)")


if __name__ == "__main__":
    main()
