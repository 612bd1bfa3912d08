"""Connect-time SSRF gate (`nexus.media.fetch.ConnectGate`, used by every connection `download` makes).

`check_url` looks at the URL a user submits; these tests cover what it cannot see: redirects, DNS answers that change
between the check and the connection (rebinding), HLS/DASH fragments, pages with several media, and protocols that
yt-dlp would hand to ffmpeg. Real yt-dlp against real loopback HTTP servers: 127.0.0.1 plays a public host and
127.0.0.2 an internal one (the address policy is swapped so that only 127.0.0.1 counts as public). No test touches
DNS or the outside network.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nexus.core.errors import BadInput
from nexus.media import fetch
from nexus.media.fetch import ConnectGate, TransientFetchError, check_url

PUBLIC_STAND_IN = ipaddress.ip_address("127.0.0.1")
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64  # the bytes are never decoded here


class Site:
    """A loopback HTTP server answering from a route table; it records every connection and request it gets."""

    def __init__(self, host: str) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[str] = []
        self.connections = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _answer(self, *, body: bool) -> None:
                site.requests.append(self.path)
                status, headers, content = site.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
                site.connections += 1
                super().process_request(request, client_address)

        self.server = Server((host, 0), Handler)
        self.host, self.port = host, self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def route(self, path: str, content: bytes | str, content_type: str, status: int = 200, **headers: str) -> str:
        body = content.encode() if isinstance(content, str) else content
        self.routes[path] = (status, {"Content-Type": content_type, **headers}, body)
        return self.url + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = (status, {"Location": location}, b"")
        return self.url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def public() -> Iterator[Site]:
    site = Site("127.0.0.1")
    yield site
    site.close()


@pytest.fixture
def internal() -> Iterator[Site]:
    site = Site("127.0.0.2")
    yield site
    site.close()


@pytest.fixture
def loopback_one_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production policy, except that 127.0.0.1 passes for a public address (127.0.0.2 stays forbidden)."""
    real = fetch.is_forbidden_address

    def policy(addr: fetch.IPAddress, *, allow_private: bool) -> bool:
        return False if addr == PUBLIC_STAND_IN else real(addr, allow_private=allow_private)

    monkeypatch.setattr(fetch, "is_forbidden_address", policy)


def run_download(url: str, dest: Path, *, allow_private: bool = False) -> Path:
    dest.mkdir(exist_ok=True)
    return fetch.download(url, dest, max_bytes=10**7, allow_private=allow_private, on_progress=lambda *_: None)


def hls_playlist(*segments: str, key: str | None = None) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0"]
    if key:
        lines.append(key)
    for segment in segments:
        lines += ["#EXTINF:4.0,", segment]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


def dash_manifest(init: str, *segments: str) -> str:
    urls = "".join(f'<SegmentURL media="{s}"/>' for s in segments)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" minBufferTime="PT2S"
     profiles="urn:mpeg:dash:profile:isoff-main:2011">
  <Period>
    <AdaptationSet mimeType="audio/mp4" codecs="mp4a.40.2" lang="en">
      <Representation id="audio" bandwidth="32000" audioSamplingRate="44100">
        <SegmentList timescale="1" duration="1"><Initialization sourceURL="{init}"/>{urls}</SegmentList>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"""


# --- the allowed path still works --------------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_direct_download_from_an_allowed_host_works(public: Site, tmp_path: Path) -> None:
    url = public.route("/clip.mp3", MP3, "audio/mpeg")
    path = run_download(url, tmp_path / "dl")
    assert path.read_bytes() == MP3 and path.name == "source.mp3"


def test_allow_private_reaches_loopback_with_the_real_policy(public: Site, internal: Site, tmp_path: Path) -> None:
    """The tests' settings (media on loopback) must keep working: with allow_private nothing is refused."""
    url = public.redirect("/moved.mp3", internal.route("/clip.mp3", MP3, "audio/mpeg"))
    assert run_download(url, tmp_path / "dl", allow_private=True).read_bytes() == MP3


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_redirect_between_allowed_hosts_is_followed(public: Site, tmp_path: Path) -> None:
    url = public.redirect("/old.mp3", "/new.mp3", status=301)
    public.route("/new.mp3", MP3, "audio/mpeg")
    assert run_download(url, tmp_path / "dl").read_bytes() == MP3
    assert public.requests[:2] == ["/old.mp3", "/new.mp3"]


# --- redirects ---------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_one_is_public")
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_a_forbidden_address_is_refused_before_connecting(
    public: Site, internal: Site, tmp_path: Path, status: int
) -> None:
    target = internal.route("/secret.mp3", MP3, "audio/mpeg")
    url = public.redirect("/clip.mp3", target, status=status)
    check_url(url, allow_private=False)  # what the caller checks first passes: the page itself is fine
    with pytest.raises(BadInput, match=r"127\.0\.0\.2 resolves to a private or local address") as caught:
        run_download(url, tmp_path / "dl")
    assert not isinstance(caught.value, TransientFetchError)
    assert internal.connections == 0
    assert not list((tmp_path / "dl").iterdir())


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_redirect_chain_is_checked_at_every_hop(public: Site, internal: Site, tmp_path: Path) -> None:
    target = internal.route("/secret.mp3", MP3, "audio/mpeg")
    url = public.redirect("/a", public.redirect("/b", public.redirect("/c", target)))
    with pytest.raises(BadInput, match=r"127\.0\.0\.2"):
        run_download(url, tmp_path / "dl")
    assert public.requests == ["/a", "/b", "/c"] and internal.connections == 0


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher"])
@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_redirect_to_another_scheme_is_refused(
    public: Site, internal: Site, tmp_path: Path, scheme: str, allow_private: bool
) -> None:
    """urllib follows ftp:// redirects with its own sockets; nothing but http(s) may be followed, ever."""
    location = "file:///etc/passwd" if scheme == "file" else f"{scheme}://{internal.host}:{internal.port}/x"
    url = public.redirect("/clip.mp3", location)
    with pytest.raises(BadInput, match=rf"redirects to a {scheme}: URL"):
        run_download(url, tmp_path / "dl", allow_private=allow_private)
    assert internal.connections == 0


# --- DNS rebinding -----------------------------------------------------------------------------------------------


def test_dns_rebinding_is_caught_at_connect_time(public: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An attacker's DNS with a zero TTL alternates a public answer and 127.0.0.1: the early check sees the public
    one, the connection gets loopback. The gate connects only to the address it has just checked."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14", "127.0.0.1"] * 10)
    looked_up: list[str] = []

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        looked_up.append(answer := next(answers))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    public.route("/clip.mp3", MP3, "audio/mpeg")
    url = f"http://rebind.example:{public.port}/clip.mp3"
    check_url(url, allow_private=False)  # first answer: public
    with pytest.raises(BadInput, match=r"rebind\.example resolves to a private or local address \(127\.0\.0\.1\)"):
        run_download(url, tmp_path / "dl")
    assert looked_up == ["93.184.215.14", "127.0.0.1"]
    assert public.connections == 0


def test_the_gate_refuses_a_name_with_any_forbidden_address_without_opening_a_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:10.0.0.7", port, 0, 0)),
        ]

    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("a socket was opened for a refused name")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(socket, "socket", no_socket)
    gate = ConnectGate(allow_private=False)
    mapped = re.escape(str(ipaddress.ip_address("::ffff:10.0.0.7")))
    with pytest.raises(BadInput, match=rf"sneaky\.example resolves to a private or local address \({mapped}\)"):
        gate.connect(("sneaky.example", 443), 5)
    assert gate.refusal is not None


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("93.184.215.14", False),
        ("2606:4700:4700::1111", False),
        ("10.0.0.1", True),
        ("169.254.169.254", True),
        ("::ffff:127.0.0.1", True),
        ("2002:7f00:1::", True),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 wrapping 10.0.0.1
        ("64:ff9b::5db8:d70e", False),  # NAT64 wrapping 93.184.215.14
    ],
)
def test_the_address_policy(address: str, forbidden: bool) -> None:
    addr = ipaddress.ip_address(address)
    assert fetch.is_forbidden_address(addr, allow_private=False) is forbidden
    assert fetch.is_forbidden_address(addr, allow_private=True) is False


# --- HLS and DASH fragments --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_one_is_public")
def test_hls_fragments_on_an_allowed_host_are_downloaded(public: Site, tmp_path: Path) -> None:
    """The positive control for the next test: the playlist really is downloaded fragment by fragment."""
    segments = [public.route(f"/seg{i}.ts", bytes([0x47]) * 188 * (i + 1), "video/mp2t") for i in range(2)]
    url = public.route("/stream.m3u8", hls_playlist(*segments), "application/vnd.apple.mpegurl")
    path = run_download(url, tmp_path / "dl")
    assert path.stat().st_size == 188 * 3
    assert {"/seg0.ts", "/seg1.ts"} <= set(public.requests)


@pytest.mark.usefixtures("loopback_one_is_public")
def test_hls_fragments_on_a_forbidden_host_are_refused(public: Site, internal: Site, tmp_path: Path) -> None:
    first = public.route("/seg0.ts", bytes([0x47]) * 188, "video/mp2t")
    second = internal.route("/seg1.ts", bytes([0x47]) * 188, "video/mp2t")
    url = public.route("/stream.m3u8", hls_playlist(first, second), "application/vnd.apple.mpegurl")
    with pytest.raises(BadInput, match=r"127\.0\.0\.2 resolves to a private or local address"):
        run_download(url, tmp_path / "dl")
    assert internal.connections == 0
    assert not [p for p in (tmp_path / "dl").glob("source.*") if not p.name.endswith((".part", ".ytdl"))]


@pytest.mark.usefixtures("loopback_one_is_public")
def test_an_hls_key_on_a_forbidden_host_is_refused(public: Site, internal: Site, tmp_path: Path) -> None:
    key = internal.route("/key.bin", b"0123456789abcdef", "application/octet-stream")
    segment = public.route("/seg0.ts", bytes(192), "video/mp2t")
    playlist = hls_playlist(segment, key=f'#EXT-X-KEY:METHOD=AES-128,URI="{key}",IV=0x{"00" * 16}')
    url = public.route("/stream.m3u8", playlist, "application/vnd.apple.mpegurl")
    # natively (with pycryptodomex) the key request is refused; without it yt-dlp would hand the playlist to ffmpeg
    with pytest.raises(BadInput, match=r"127\.0\.0\.2 resolves to a private|outside the address check"):
        run_download(url, tmp_path / "dl")
    assert internal.connections == 0


@pytest.mark.usefixtures("loopback_one_is_public")
def test_hls_that_yt_dlp_hands_to_ffmpeg_cannot_reach_a_forbidden_host(
    public: Site, internal: Site, tmp_path: Path
) -> None:
    """yt-dlp's native HLS downloader delegates playlists it cannot handle (SAMPLE-AES here) to ffmpeg, whose
    sockets the gate never sees: ffmpeg must be left without a network protocol to fetch with."""
    key = internal.route("/key.bin", b"0123456789abcdef", "application/octet-stream")
    segment = internal.route("/seg0.ts", bytes([0x47]) * 188, "video/mp2t")
    playlist = hls_playlist(segment, key=f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{key}"')
    url = public.route("/stream.m3u8", playlist, "application/vnd.apple.mpegurl")
    with pytest.raises(BadInput, match="needs ffmpeg to download it, which would fetch it outside the address check"):
        run_download(url, tmp_path / "dl")
    assert internal.connections == 0


@pytest.fixture(scope="module")
def dash_audio(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Real DASH audio (init segment, then media segments): yt-dlp's post-download fixup runs ffmpeg on the result."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    out = tmp_path_factory.mktemp("dash")
    encode = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", "-b:a", "32k"]
    segment = ["-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0"]
    subprocess.run([*encode, *segment, str(out / "out.mpd")], check=True, timeout=60)
    return [(out / "init-stream0.m4s").read_bytes()] + [p.read_bytes() for p in sorted(out.glob("chunk-*.m4s"))]


@pytest.mark.usefixtures("loopback_one_is_public")
def test_dash_segments_on_an_allowed_host_are_downloaded(public: Site, tmp_path: Path, dash_audio: list[bytes]) -> None:
    """The positive control for the next test: the manifest really is downloaded segment by segment."""
    init = public.route("/init.mp4", dash_audio[0], "audio/mp4")
    segments = [public.route(f"/seg{i}.m4s", data, "audio/iso.segment") for i, data in enumerate(dash_audio[1:])]
    url = public.route("/manifest.mpd", dash_manifest(init, *segments), "application/dash+xml")
    assert run_download(url, tmp_path / "dl").stat().st_size > 0
    assert {"/init.mp4", "/seg0.m4s", "/seg1.m4s"} <= set(public.requests)


@pytest.mark.usefixtures("loopback_one_is_public")
def test_dash_segments_on_a_forbidden_host_are_refused(public: Site, internal: Site, tmp_path: Path) -> None:
    init = public.route("/init.mp4", b"I" * 100, "video/mp4")
    segments = [public.route("/seg0.m4s", b"S" * 50, "video/iso.segment"), internal.url + "/seg1.m4s"]
    url = public.route("/manifest.mpd", dash_manifest(init, *segments), "application/dash+xml")
    with pytest.raises(BadInput, match=r"127\.0\.0\.2 resolves to a private or local address"):
        run_download(url, tmp_path / "dl")
    assert internal.connections == 0


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_live_stream_that_only_ffmpeg_would_fetch_is_refused(public: Site, tmp_path: Path) -> None:
    """yt-dlp always gives live HLS to ffmpeg (no #EXT-X-ENDLIST: live), whatever the downloader options say."""
    segment = public.route("/seg0.ts", bytes([0x47]) * 188, "video/mp2t")
    playlist = hls_playlist(segment).replace("#EXT-X-ENDLIST\n", "")
    url = public.route("/live.m3u8", playlist, "application/vnd.apple.mpegurl")
    with pytest.raises(BadInput, match=r"this live stream \(m3u8\S*\) can only be downloaded by an external program"):
        run_download(url, tmp_path / "dl")
    assert "/seg0.ts" not in public.requests


# --- pages with several media, and a page pointing inwards ---------------------------------------------------------


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_page_with_several_media_is_refused_without_fetching_any(
    public: Site, internal: Site, tmp_path: Path
) -> None:
    """yt-dlp's generic extractor turns such a page into a playlist, whose entries the old per-URL check skipped."""
    first = internal.route("/a.mp3", MP3, "audio/mpeg")
    second = internal.route("/b.mp4", MP3, "video/mp4")
    page = f'<html><body><audio src="{first}"></audio><video src="{second}"></video></body></html>'
    url = public.route("/page.html", page, "text/html")
    with pytest.raises(BadInput, match="2 audio/video items"):
        run_download(url, tmp_path / "dl")
    assert internal.connections == 0


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_page_whose_single_media_is_internal_is_refused(public: Site, tmp_path: Path) -> None:
    """The page passes; the media URL it yields is refused before anything is downloaded (no network involved)."""
    page = '<html><body><video src="http://10.0.0.5/x.mp4"></video></body></html>'
    url = public.route("/page.html", page, "text/html")
    with pytest.raises(BadInput, match=r"10\.0\.0\.5 resolves to a private or local address"):
        run_download(url, tmp_path / "dl")
    assert public.requests == ["/page.html"]


@pytest.mark.usefixtures("loopback_one_is_public")
def test_a_page_with_one_allowed_media_is_downloaded(public: Site, tmp_path: Path) -> None:
    media = public.route("/talk.mp3", MP3, "audio/mpeg")
    url = public.route("/page.html", f'<html><body><audio src="{media}"></audio></body></html>', "text/html")
    assert run_download(url, tmp_path / "dl").read_bytes() == MP3
