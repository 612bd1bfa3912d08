"""Test media made on the spot (espeak-ng + ffmpeg) and a loopback HTTP server that serves it like the web."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SPEECH_A = (
    "The lighthouse keeper counted seven ships sailing past the harbor at dawn. "
    "He wrote every name in a leather notebook and lit the lamp again at dusk."
)
SPEECH_B = (
    "To bake sourdough bread you need flour, water, salt and a lively starter. "
    "Knead the dough gently and let it rise overnight in a cool kitchen."
)
SPEECH_C = "Remember to call the dentist on Thursday morning about the appointment for Margaret."
SPEECH_LONG = " ".join(
    [
        "Durable execution means the work survives crashes of the machines that run it.",
        "A workflow records every step in its history, and a new worker continues where the old one stopped.",
        "Volcanoes form where tectonic plates pull apart or collide, and magma rises through the crust.",
        "The orchestra tuned their violins while the conductor studied the score of the symphony.",
        "Astronomers measured the light of distant galaxies to estimate how fast the universe expands.",
    ]
    * 3
)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def speak(text: str, dest: Path, speed: int = 160) -> Path:
    _run("espeak-ng", "-s", str(speed), "-w", str(dest), text)
    return dest


def ffmpeg(*args: str) -> None:
    _run("ffmpeg", "-nostdin", "-v", "error", "-y", *args)


def make_clips(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    c: dict[str, Path] = {}
    c["a_wav"] = speak(SPEECH_A, root / "a.wav")
    c["a_mp3"] = root / "a.mp3"
    ffmpeg("-i", str(c["a_wav"]), "-b:a", "128k", str(c["a_mp3"]))
    c["a_64k"] = root / "a_64k.mp3"
    ffmpeg("-i", str(c["a_wav"]), "-b:a", "64k", str(c["a_64k"]))
    c["a_shift"] = root / "a_shift.wav"
    ffmpeg(
        "-f", "lavfi", "-t", "1", "-i", "anullsrc=r=22050:cl=mono", "-i", str(c["a_wav"]),
        "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", str(c["a_shift"]),
    )  # fmt: skip
    c["b_wav"] = speak(SPEECH_B, root / "b.wav")
    c["b_mp4"] = root / "b.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:s=160x120:r=5", "-i", str(c["b_wav"]),
        "-shortest", "-c:v", "mpeg4", "-c:a", "aac", str(c["b_mp4"]),
    )  # fmt: skip
    c["c_webm"] = root / "c.webm"
    ffmpeg("-i", str(speak(SPEECH_C, root / "c.wav")), "-c:a", "libopus", "-b:a", "32k", str(c["c_webm"]))
    c["long_mp3"] = root / "long.mp3"
    ffmpeg("-i", str(speak(SPEECH_LONG, root / "long.wav", speed=175)), "-b:a", "64k", str(c["long_mp3"]))
    c["silent_video"] = root / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=160x120:r=5", "-t", "2", "-c:v", "mpeg4", str(c["silent_video"]))
    c["text"] = root / "notes.txt"
    c["text"].write_text("this is not audio\n" * 20)
    c["corrupt"] = root / "corrupt.mp3"
    c["corrupt"].write_bytes(b"ID3" + bytes(range(256)) * 40)
    c["empty"] = root / "empty.wav"
    c["empty"].write_bytes(b"")
    return c


class MediaServer:
    """Serves the clips directory, HTML pages embedding them, and failure modes; counts every request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.fail_next: dict[str, list[int]] = {}
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw) -> None:
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *args: object) -> None:
                pass

            def _route(self) -> bool:
                path = self.path.split("?")[0]
                server.hits[f"{self.command} {path}"] += 1
                codes = server.fail_next.get(path)
                if codes:
                    self.send_error(codes.pop(0))
                    return True
                if path.startswith("/page/"):
                    name = path.removeprefix("/page/").removesuffix(".html")
                    tag = "video" if name.endswith(".mp4") else "audio"
                    body = (
                        f"<html><head><title>Clip {name}</title></head><body><h1>A clip</h1>"
                        f'<{tag} controls src="/{name}"></{tag}></body></html>'
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(body)
                    return True
                if path == "/nomedia.html":
                    body = b"<html><body><p>Just text, no media here.</p></body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return True
                return False

            def do_GET(self) -> None:
                if not self._route():
                    super().do_GET()

            def do_HEAD(self) -> None:
                if not self._route():
                    super().do_HEAD()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gets(self, path: str) -> int:
        return self.hits[f"GET {path}"]

    def __enter__(self) -> MediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
