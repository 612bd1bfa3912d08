"""A loopback server speaking the OpenAI chat-completions and Gemini generateContent protocols, with scripted
failures and delays. (temporalio's GeminiTestServer is not importable in temporalio 1.35: its contrib shim points
at a module the wheel does not ship.)"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self, content: dict | None = None) -> None:
        self.content = content or {
            "title": "Harbor log",
            "summary": "A lighthouse keeper records passing ships.",
            "tags": ["lighthouse", "ships", "harbor"],
        }
        self.fail_with: list[int] = []  # status codes for the next requests, in order; 0 answers normally
        self.delay_s = 0.0
        self.answer = "The keeper counted seven ships [1]."  # streamed chat answer, a word per chunk
        self.chunk_delay_s = 0.0
        self.facts: list[str] = []  # what Mem0's fact extraction gets back
        self.requests: list[dict] = []
        self.extractions: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                # never scripted to fail: it runs after an answer, racing whatever a test does next
                if "Memory Extractor" in json.dumps(body):  # Mem0's infer=True extraction call
                    fake.extractions.append(body)
                    return self._send(200, fake._completion(body, {"memory": [{"text": f} for f in fake.facts]}))
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fake.fail_with and (code := fake.fail_with.pop(0)):
                    payload = {"error": {"message": f"scripted failure {code}", "type": "test", "code": code}}
                    return self._send(code, payload)
                if ":streamGenerateContent" in self.path:
                    return self._stream(
                        lambda word: {"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}}]},
                        {"usageMetadata": {"promptTokenCount": 42, "candidatesTokenCount": 7, "totalTokenCount": 49}},
                    )
                if body.get("stream"):
                    return self._stream(
                        lambda word: {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                                      "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]},
                        {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
                         "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}},
                        done=True,
                    )  # fmt: skip
                if ":generateContent" in self.path:
                    return self._send(
                        200,
                        {
                            "candidates": [
                                {
                                    "content": {"role": "model", "parts": [{"text": json.dumps(fake.content)}]},
                                    "finishReason": "STOP",
                                    "index": 0,
                                }
                            ],
                            "usageMetadata": {
                                "promptTokenCount": 10,
                                "candidatesTokenCount": 10,
                                "totalTokenCount": 20,
                            },
                            "modelVersion": self.path.split("/models/")[-1].split(":")[0],
                        },
                    )
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                return self._send(200, fake._completion(body, fake.content))

            def _stream(self, chunk: object, last: dict, done: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for word in re.findall(r"\S+\s*", fake.answer):
                        self.wfile.write(f"data: {json.dumps(chunk(word))}\n\n".encode())  # type: ignore[operator]
                        self.wfile.flush()
                        time.sleep(fake.chunk_delay_s)
                    self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
                    if done:
                        self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}/v1"  # OpenAI-compatible base URL
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def chat_requests(self) -> list[dict]:
        """Streamed chat generations only (not enrichment or Mem0 extraction calls)."""
        return [r for r in self.requests if r["body"].get("stream") or "streamGenerateContent" in r["path"]]

    @staticmethod
    def _completion(body: dict, content: dict) -> dict:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": json.dumps(content)}}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    def close(self) -> None:
        self.httpd.shutdown()
