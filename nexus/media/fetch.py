"""Getting media in: URL safety, yt-dlp downloads, ffprobe validation, ffmpeg conversion to 16 kHz mono WAV.

SSRF has two gates. `check_url` refuses early with a clear message (bad scheme, a host that resolves to a private
address). `ConnectGate` is the one that cannot be talked around: every socket yt-dlp opens for a download (the page,
each redirect, each HLS/DASH fragment and key) is resolved, checked and connected by it, on the address actually
connected to, so a redirect, a media URL found in a page or a DNS answer that changed since the early check
(rebinding) cannot reach an internal address either. What would bypass Python's sockets (ffmpeg or another external
downloader) is refused, and a URL that leads to several media (a playlist) is refused before any entry is fetched.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import ipaddress
import json
import logging
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from nexus.core.errors import BadInput
from nexus.core.stopping import Stopped, StopToken

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = {"http", "https"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_TIMEOUT = object()  # as in socket.create_connection: leave the socket's default timeout alone


class AddressRefused(BadInput):
    """A host the SSRF policy forbids. Deliberately not an OSError: nothing between the socket and `download`
    (urllib, yt-dlp's retry loops) may mistake it for network trouble and retry or swallow it as such."""


def _embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one tunnels to (mapped, 6to4, NAT64): it is where the packets end up."""
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_forbidden_address(addr: IPAddress, *, allow_private: bool) -> bool:
    """The one address policy, asked by `check_url` and by `ConnectGate` for every connection.

    Anything that is not globally routable (private, loopback, link-local such as cloud metadata, carrier-grade NAT,
    unspecified, reserved) is forbidden unless the deployment allows private URLs (tests serve media on loopback).
    Looked up through the module at call time, so tests can swap it to mark one loopback address as "private"."""
    if allow_private:
        return False
    embedded = _embedded_ipv4(addr)
    return not addr.is_global or (embedded is not None and not embedded.is_global)


def _refusal(host: str, addr: IPAddress) -> AddressRefused:
    return AddressRefused(f"refused: {host} resolves to a private or local address ({addr})")


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse what is not http(s), and hosts that resolve to private, loopback or link-local addresses (SSRF).

    An early, cheap refusal with a clear message; `ConnectGate` re-checks at connect time what is actually reached."""
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
    except UnicodeError as exc:  # the IDNA codec: an empty label (`a..b`) or one over 63 characters
        raise BadInput(f"malformed host name {parsed.hostname!r}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if is_forbidden_address(addr, allow_private=False):
            raise _refusal(parsed.hostname, addr)


class ConnectGate:
    """Opens every TCP connection of one download, refusing forbidden addresses at connect time.

    It resolves the name itself and connects to exactly the addresses it checked, so there is no second lookup an
    attacker's DNS could answer differently (rebinding). A name with any forbidden address is refused outright, as
    in `check_url`. Refusals are also recorded, because yt-dlp sometimes turns an error into a warning or a generic
    failure: `download` fails closed with the refusal whenever one happened."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._refusals: list[BadInput] = []
        self._lock = threading.Lock()  # fragments may be fetched on several threads

    @property
    def refusal(self) -> BadInput | None:
        with self._lock:
            return self._refusals[0] if self._refusals else None

    def refuse(self, exc: BadInput) -> BadInput:
        """Record a refusal and hand it back for raising."""
        with self._lock:
            self._refusals.append(exc)
        return exc

    def connect(
        self,
        address: tuple[str, int],
        timeout: object = _DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """Drop-in for `socket.create_connection` (what http.client calls through `_create_connection`)."""
        host, port = address
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"no addresses for {host}")
        for *_, sockaddr in infos:
            addr = ipaddress.ip_address(sockaddr[0])
            if is_forbidden_address(addr, allow_private=self.allow_private):
                raise self.refuse(_refusal(host, addr))
        error: OSError | None = None
        for family, socktype, proto, _canonname, sockaddr in infos:
            sock = socket.socket(family, socktype, proto)
            try:
                if timeout is None or isinstance(timeout, int | float):  # else a "default timeout" sentinel
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        assert error is not None
        raise error


@functools.cache
def _guarded_ydl_class() -> type[Any]:
    """A YoutubeDL whose only way onto the network is `ConnectGate`. Built on first use: yt-dlp is slow to import
    and the API process, which only calls `check_url`, never needs it.

    yt-dlp's own seam is used: a YoutubeDL gets its request handlers from `build_request_director`, so this
    subclass hands it one handler (yt-dlp's urllib handler, minus ftp, file and proxies, with every socket
    opened by the gate) instead of the process-wide registry. Nothing global is patched: concurrent downloads each
    have their own YoutubeDL, handler and gate."""
    import yt_dlp
    from yt_dlp.downloader import get_suitable_downloader
    from yt_dlp.downloader.dash import DashSegmentsFD
    from yt_dlp.downloader.hls import HlsFD
    from yt_dlp.downloader.http import HttpFD
    from yt_dlp.networking import _urllib
    from yt_dlp.networking.exceptions import RequestError

    # Downloaders that fetch through YoutubeDL.urlopen, hence through the gate. The others run ffmpeg, curl,
    # rtmpdump... which open their own sockets.
    in_process_downloaders = (HttpFD, HlsFD, DashSegmentsFD)

    class GuardedHTTPHandler(_urllib.HTTPHandler):
        def __init__(self, gate: ConnectGate, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._gate = gate

        def _connection(self, http_class: type[http.client.HTTPConnection], *args: Any, **kwargs: Any) -> Any:
            conn = http_class(*args, **kwargs)
            conn._create_connection = self._gate.connect  # type: ignore[attr-defined]  # what connect() calls
            if self._source_address is not None:
                conn.source_address = (self._source_address, 0)  # type: ignore[attr-defined]  # not in typeshed
            return conn

        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(functools.partial(self._connection, http.client.HTTPConnection), req)

        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(
                functools.partial(self._connection, http.client.HTTPSConnection), req, context=self._context
            )

    class GuardedRedirectHandler(_urllib.RedirectHandler):
        """Only http(s) redirects: urllib would also follow ftp://, whose sockets the gate would never see."""

        def __init__(self, gate: ConnectGate) -> None:
            super().__init__()
            self._gate = gate

        def http_error_302(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any) -> Any:
            location = headers.get("location") or headers.get("uri")
            if location:
                scheme = urlparse(urljoin(req.full_url, location)).scheme.lower()
                if scheme not in ALLOWED_SCHEMES:
                    fp.close()
                    target = f"{scheme}:" if scheme else "scheme-less"
                    message = f"refused: {req.host} redirects to a {target} URL; only http(s) redirects are followed"
                    raise self._gate.refuse(BadInput(message))
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    class GuardedRH(_urllib.UrllibRH):
        _SUPPORTED_URL_SCHEMES = ("http", "https", "data")
        _SUPPORTED_PROXY_SCHEMES = ()  # a proxy would hide the real destination from the gate
        gate: ConnectGate | None = None

        def _create_instance(self, proxies: Any, cookiejar: Any, legacy_ssl_support: bool | None = None) -> Any:
            assert self.gate is not None, "GuardedRH needs its gate before the first request"
            opener = urllib.request.OpenerDirector()
            for handler in (
                GuardedHTTPHandler(
                    self.gate,
                    debuglevel=int(bool(self.verbose)),
                    context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support),
                    source_address=self.source_address,
                ),
                urllib.request.HTTPCookieProcessor(cookiejar),
                urllib.request.DataHandler(),
                urllib.request.UnknownHandler(),
                urllib.request.HTTPDefaultErrorHandler(),
                urllib.request.HTTPErrorProcessor(),
                GuardedRedirectHandler(self.gate),
            ):
                opener.add_handler(handler)
            opener.addheaders = []  # no urllib User-Agent: yt-dlp sets its own headers
            return opener

        def _send(self, request: Any) -> Any:
            try:
                return super()._send(request)
            except BadInput as exc:
                # A RequestError goes straight up to the extractor; anything else the RequestDirector logs as a
                # yt-dlp bug and retries on other handlers.
                raise RequestError(str(exc)) from exc

    class GuardedYoutubeDL(yt_dlp.YoutubeDL):
        def __init__(self, params: dict[str, Any], gate: ConnectGate) -> None:
            self.nexus_gate = gate
            super().__init__(params)

        def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
            director = super().build_request_director([GuardedRH])
            for handler in director.handlers.values():
                handler.gate = self.nexus_gate
            return director

        def dl(self, name: str, info: dict[str, Any], subtitle: bool = False, test: bool = False) -> Any:
            """Refuse downloads that an external program (ffmpeg for live HLS/DASH, rtmpdump...) would make."""
            if not self.nexus_gate.allow_private:
                # dl() picks the downloader with these params (a test download uses its own, bare ones)
                fd = get_suitable_downloader(dict(info), {} if test else self.params, to_stdout=name == "-")
                if fd not in in_process_downloaders and test:
                    return False, False  # a format yt-dlp wanted to try out first: count it as not working
                if fd not in in_process_downloaders:
                    protocol = info.get("protocol") or "unknown"
                    live = " live" if info.get("is_live") else ""
                    raise self.nexus_gate.refuse(
                        BadInput(
                            f"refused: this{live} stream ({protocol}) can only be downloaded by an external program, "
                            "which would fetch it outside the address check"
                        )
                    )
            return super().dl(name, info, subtitle=subtitle, test=test)

        def report_warning(self, message: str, *args: Any, **kwargs: Any) -> Any:
            """yt-dlp's native HLS downloader hands playlists it cannot handle itself (AES-128 without pycryptodomex,
            SAMPLE-AES...) to ffmpeg, announcing it with this warning just before. Refusing here gives a clear
            reason; ffmpeg's empty protocol whitelist (see `download`) is what holds if the wording ever changes."""
            if not self.nexus_gate.allow_private and "delegated to ffmpeg" in str(message):
                raise self.nexus_gate.refuse(
                    BadInput(
                        "refused: this stream (encrypted or unusual HLS) needs ffmpeg to download it, "
                        "which would fetch it outside the address check"
                    )
                )
            return super().report_warning(message, *args, **kwargs)

    return GuardedYoutubeDL


@dataclass(frozen=True)
class Probe:
    duration_s: float
    format_name: str
    has_audio: bool
    has_video: bool
    channels: int = 1  # of the first audio stream


PROBE_TIMEOUT_S = 30.0
"""ffprobe reads headers, not the whole file: a file it cannot judge in this long is hostile or broken."""
_UNREADABLE = "not a readable audio/video file: the data is corrupt or in a format that cannot be read"


def _probe_args(path: Path) -> list[str]:
    return ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]


def _parse_probe(path: Path, returncode: int, stdout: str, stderr: str) -> Probe:
    if returncode != 0:
        # ffprobe's words name our temp path and its internals: for the log, not for the user
        log.info("ffprobe refused %s: %s", path, stderr.strip())
        raise BadInput(_UNREADABLE)
    try:
        info = json.loads(stdout or "{}")
    except json.JSONDecodeError as exc:
        raise BadInput(_UNREADABLE) from exc
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
        channels=next(
            (int(s.get("channels") or 1) for s in info.get("streams", []) if s.get("codec_type") == "audio"), 1
        ),
    )


def _too_slow(path: Path, timeout_s: float) -> BadInput:
    log.warning("ffprobe gave up on %s after %.0fs", path, timeout_s)
    return BadInput(f"{_UNREADABLE} (reading it took longer than {timeout_s:.0f} s)")


def probe(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    try:
        result = subprocess.run(_probe_args(path), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise _too_slow(path, timeout_s) from exc
    return _parse_probe(path, result.returncode, result.stdout, result.stderr)


async def probe_async(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """`probe` for the API: a subprocess awaited on the event loop, so hostile uploads occupy no thread of the
    request pool while ffprobe chews on them, and one that takes too long is killed."""
    proc = await asyncio.create_subprocess_exec(
        *_probe_args(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise _too_slow(path, timeout_s) from exc
    return _parse_probe(path, proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size == 0:
        raise BadInput("the file is empty")
    if size > max_bytes:
        raise BadInput(f"the file is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB (NEXUS_MAX_MEDIA_MB)")


def _check_probe(info: Probe, max_minutes: float) -> Probe:
    if not info.has_audio:
        raise BadInput("no audio stream found: upload audio or video with sound")
    if info.duration_s > max_minutes * 60:
        raise BadInput(
            f"the media is {info.duration_s / 60:.1f} minutes long; "
            f"the limit is {max_minutes:g} (NEXUS_MAX_MEDIA_MINUTES)"
        )
    return info


def validate_media(path: Path, *, max_bytes: int, max_minutes: float) -> Probe:
    _check_size(path, max_bytes)
    return _check_probe(probe(path), max_minutes)


async def validate_upload(path: Path, *, max_bytes: int, max_minutes: float) -> Probe:
    """`validate_media` for a file a user just uploaded, without blocking a thread."""
    _check_size(path, max_bytes)
    return _check_probe(await probe_async(path), max_minutes)


def to_speech_wav(src: Path, dest: Path, stop: StopToken | None = None) -> None:
    """16 kHz mono PCM: what Whisper and chromaprint want. The original is kept separately.
    An hour of audio converts in seconds; `stop` kills ffmpeg at once when the work is cancelled."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src)]
    args += ["-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(dest)]
    returncode, stderr = _run_stoppable(args, stop, timeout_s=1800)
    if returncode != 0:
        # ffmpeg's words ("/tmp/…/original.mp3: Invalid argument", "buffer @ 0x…") are for the log only
        log.warning("ffmpeg could not convert %s: %s", src, stderr.strip())
        raise BadInput("could not decode the audio: the file is damaged or uses a codec that cannot be read")
    if not dest.exists() or dest.stat().st_size <= 44:  # 44 bytes: a WAV header and no samples
        log.warning("ffmpeg produced no samples from %s: %s", src, stderr.strip())
        raise BadInput("could not decode the audio: the audio track holds no sound")


MAX_CHANNELS = 8
DISTINCT_BELOW = 0.5  # channels whose samples correlate less than this carry different sound (a speaker each)


def to_channels_wav(src: Path, dest: Path, channels: int, stop: StopToken | None = None) -> bool:
    """16 kHz PCM keeping the source's channels (up to 8), when they carry different sound: one speaker per
    channel, as phone calls, interviews and meeting tools record. False (and no file) for mono, for identical
    channels, and for ordinary stereo, whose channels correlate: those are transcribed from the mix."""
    if channels < 2:
        return False
    count = min(channels, MAX_CHANNELS)
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src)]
    args += ["-vn", "-ac", str(count), "-ar", "16000", "-c:a", "pcm_s16le", str(dest)]
    returncode, stderr = _run_stoppable(args, stop, timeout_s=1800)
    if returncode != 0:
        log.warning("ffmpeg could not split the channels of %s: %s", src, stderr.strip())
        return False
    if channel_correlation(dest) < DISTINCT_BELOW:
        return True
    dest.unlink(missing_ok=True)
    return False


def channel_correlation(wav_path: Path) -> float:
    """The smallest Pearson correlation between any two channels, read in one-second blocks (an hour of
    stereo is never in memory at once)."""
    import wave

    import numpy as np

    with wave.open(str(wav_path), "rb") as wav:
        count = wav.getnchannels()
        sums = np.zeros(count)
        squares = np.zeros((count, count))
        n = 0
        while frames := wav.readframes(16_000):
            block = np.frombuffer(frames, dtype=np.int16).reshape(-1, count).astype(np.float64)
            sums += block.sum(axis=0)
            squares += block.T @ block
            n += len(block)
    if n == 0:
        return 1.0
    mean = sums / n
    cov = squares / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
    corr = cov / np.outer(std, std)
    return float(corr[np.triu_indices(count, k=1)].min())


def _run_stoppable(args: list[str], stop: StopToken | None, *, timeout_s: float) -> tuple[int, str]:
    """Run a tool to completion, polling `stop`: a cancelled job's ffmpeg is killed, not left to finish."""
    if stop is None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
        return result.returncode, result.stderr
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                _, stderr = proc.communicate(timeout=0.25)
                return proc.returncode, stderr
            except subprocess.TimeoutExpired:
                stop.check()
                if time.monotonic() > deadline:
                    raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class TransientFetchError(Exception):
    """Network trouble or a 5xx: worth retrying."""


def media_urls(info: dict) -> list[str]:
    """Every URL yt-dlp chose to download for this media (the page may point anywhere)."""
    urls = [info.get("url")] + [f.get("url") for f in info.get("requested_formats") or []]
    return [u for u in urls if u]


def _refuse_playlists(info: dict, url: str) -> None:
    """One URL, one media item: a page with several <audio>/<video> tags or a playlist is refused with a reason,
    rather than guessing which entry was meant (or downloading them all onto one another)."""
    if info.get("_type") not in ("playlist", "multi_video"):
        return
    entries = info.get("entries")
    count = len(entries) if isinstance(entries, list) else None
    what = f"{count} audio/video items" if count is not None else "several audio/video items"
    raise BadInput(f"{url} leads to {what} (a playlist or a page with several players): submit the address of one")


def download(
    url: str,
    dest_dir: Path,
    *,
    max_bytes: int,
    allow_private: bool,
    on_progress: Callable[[int, int | None], None],
    stop: StopToken | None = None,
) -> Path:
    """Download with yt-dlp (direct files, HTML pages with <video>/<audio>, and every site yt-dlp knows).

    Every connection goes through a `ConnectGate` (see `_guarded_ydl_class`); the media URLs a page points to are
    also checked before the download starts, for an early, clear refusal. Any refusal fails the download as
    BadInput, never as a TransientFetchError: retrying cannot make an address public."""
    import yt_dlp

    def hook(d: dict) -> None:
        if stop is not None:
            stop.check()  # a cancelled download ends at its next chunk
        if d.get("status") == "downloading":
            on_progress(int(d.get("downloaded_bytes") or 0), d.get("total_bytes") or d.get("total_bytes_estimate"))

    opts: dict[str, Any] = {
        "outtmpl": str(dest_dir / "source.%(ext)s"),
        "format": "bestaudio/best",
        "noplaylist": True,
        "extract_flat": "in_playlist",  # a playlist is refused: do not resolve its entries first
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
        "proxy": "",  # not even HTTP(S)_PROXY from the environment: the gate must see the real destination
        # HLS/DASH fragments through yt-dlp's own downloaders (hence the gate), not ffmpeg
        "hls_prefer_native": True,
        "external_downloader": {"default": "native"},
    }
    if not allow_private:
        # yt-dlp still hands HLS it cannot parse to ffmpeg (from inside its native downloader); ffmpeg would fetch
        # the playlist and fragments with its own sockets, so give it no network protocol to fetch with
        opts["external_downloader_args"] = {"ffmpeg_i": ["-protocol_whitelist", "file,crypto,data"]}
    gate = ConnectGate(allow_private=allow_private)
    try:
        with _guarded_ydl_class()(opts, gate) as ydl:
            info = ydl.extract_info(url, download=False)
            _refuse_playlists(info, url)
            for media_url in media_urls(info):
                check_url(media_url, allow_private=allow_private)
            ydl.process_ie_result(info, download=True)
    except Exception as exc:
        if stop is not None and stop.stopped:
            raise Stopped("the download was cancelled") from exc
        refusal = gate.refusal
        if refusal is exc:
            raise
        if refusal is not None:
            raise refusal from exc
        if not isinstance(exc, yt_dlp.utils.DownloadError):
            raise
        message = str(exc).replace("ERROR: ", "").replace(str(dest_dir), "…")
        lowered = message.lower()
        if any(s in lowered for s in ("http error 5", "timed out", "connection", "temporarily", "reset by peer")):
            raise TransientFetchError(message) from exc
        if "unsupported url" in lowered or "no video formats" in lowered or "no media" in lowered:
            raise BadInput(f"no audio or video found at {url}") from exc
        raise BadInput(f"could not download {url}: {message}") from exc
    if gate.refusal is not None:  # yt-dlp carried on past it (a skipped fragment, an optional request)
        raise gate.refusal
    files = [p for p in dest_dir.glob("source.*") if not p.name.endswith((".part", ".ytdl"))]
    if not files:
        raise BadInput(f"no audio or video found at {url} (or it is larger than {max_bytes / 1e6:.0f} MB)")
    return files[0]
