"""Getting media in: URL safety, yt-dlp downloads, ffprobe validation, ffmpeg conversion to 16 kHz mono WAV."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from nexus.core.errors import BadInput

ALLOWED_SCHEMES = {"http", "https"}


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse what is not http(s), and hosts that resolve to private, loopback or link-local addresses (SSRF)."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError as exc:  # a bad port or an unclosed [IPv6] bracket
        raise BadInput(f"malformed URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise BadInput(f"unsupported URL scheme {parsed.scheme or '(none)'!r}: use http:// or https://")
    if not parsed.hostname:
        raise BadInput("the URL has no host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise BadInput(f"cannot resolve host {parsed.hostname!r}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise BadInput(f"refused: {parsed.hostname} resolves to a private or local address ({addr})")


@dataclass(frozen=True)
class Probe:
    duration_s: float
    format_name: str
    has_audio: bool
    has_video: bool


def probe(path: Path) -> Probe:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise BadInput(f"not a readable audio/video file ({result.stderr.strip().splitlines()[-1:] or 'ffprobe'})")
    info = json.loads(result.stdout or "{}")
    streams = info.get("streams", [])
    kinds = {s.get("codec_type") for s in streams}
    duration = float(info.get("format", {}).get("duration") or 0.0)
    if duration <= 0:
        duration = max((float(s.get("duration") or 0) for s in streams), default=0.0)
    return Probe(
        duration_s=duration,
        format_name=info.get("format", {}).get("format_name", "unknown"),
        has_audio="audio" in kinds,
        has_video="video" in kinds,
    )


def validate_media(path: Path, *, max_bytes: int, max_minutes: float) -> Probe:
    size = path.stat().st_size
    if size == 0:
        raise BadInput("the file is empty")
    if size > max_bytes:
        raise BadInput(f"the file is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB (NEXUS_MAX_MEDIA_MB)")
    info = probe(path)
    if not info.has_audio:
        raise BadInput("no audio stream found: upload audio or video with sound")
    if info.duration_s > max_minutes * 60:
        raise BadInput(
            f"the media is {info.duration_s / 60:.1f} minutes long; "
            f"the limit is {max_minutes:g} (NEXUS_MAX_MEDIA_MINUTES)"
        )
    return info


def to_speech_wav(src: Path, dest: Path) -> None:
    """16 kHz mono PCM: what Whisper and chromaprint want. The original is kept separately."""
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-vn",
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "pcm_s16le",
            str(dest),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0 or not dest.exists() or dest.stat().st_size <= 44:
        raise BadInput(f"could not decode the audio: {result.stderr.strip()[-300:] or 'no samples'}")


class TransientFetchError(Exception):
    """Network trouble or a 5xx: worth retrying."""


def media_urls(info: dict) -> list[str]:
    """Every URL yt-dlp chose to download for this media (the page may point anywhere)."""
    urls = [info.get("url")] + [f.get("url") for f in info.get("requested_formats") or []]
    return [u for u in urls if u]


def download(
    url: str,
    dest_dir: Path,
    *,
    max_bytes: int,
    allow_private: bool,
    on_progress: Callable[[int, int | None], None],
) -> Path:
    """Download with yt-dlp (direct files, HTML pages with <video>/<audio>, and every site yt-dlp knows).

    Extraction and download are split so the media URLs a page points to pass the same address check as the
    page itself: a public page embedding `http://10.0.0.5/x.mp4` is refused too."""
    import yt_dlp

    def hook(d: dict) -> None:
        if d.get("status") == "downloading":
            on_progress(int(d.get("downloaded_bytes") or 0), d.get("total_bytes") or d.get("total_bytes_estimate"))

    opts = {
        "outtmpl": str(dest_dir / "source.%(ext)s"),
        "format": "bestaudio/best",
        "noplaylist": True,
        "max_filesize": max_bytes,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "progress_hooks": [hook],
        "socket_timeout": 30,
        "retries": 0,  # Temporal retries the activity, visibly
        "fragment_retries": 0,
        "restrictfilenames": True,
        "cachedir": False,
    }
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False)
            for media_url in media_urls(info):
                check_url(media_url, allow_private=allow_private)
            ydl.process_ie_result(info, download=True)
    except yt_dlp.utils.DownloadError as exc:
        message = str(exc).replace("ERROR: ", "")
        lowered = message.lower()
        if any(s in lowered for s in ("http error 5", "timed out", "connection", "temporarily", "reset by peer")):
            raise TransientFetchError(message) from exc
        if "unsupported url" in lowered or "no video formats" in lowered or "no media" in lowered:
            raise BadInput(f"no audio or video found at {url}") from exc
        raise BadInput(f"could not download {url}: {message}") from exc
    files = [p for p in dest_dir.glob("source.*") if not p.name.endswith((".part", ".ytdl"))]
    if not files:
        raise BadInput(f"no audio or video found at {url} (or it is larger than {max_bytes / 1e6:.0f} MB)")
    return files[0]
