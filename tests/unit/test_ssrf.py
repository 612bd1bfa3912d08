"""URL safety before any download (`nexus.media.fetch.check_url` and `media_urls`).

A server that fetches user-supplied URLs must not become a proxy into its own network (SSRF): cloud metadata at
169.254.169.254, databases on 10/8, admin ports on loopback. Only IP literals and a fake resolver are used here,
so no test touches DNS or the network.
"""

from __future__ import annotations

import socket

import pytest

from nexus.core.errors import BadInput
from nexus.media import fetch
from nexus.media.fetch import check_url, media_urls


@pytest.fixture(autouse=True)
def numeric_only_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve IP literals as usual, but never look a name up (a name would fail like an unknown host)."""
    real = socket.getaddrinfo

    def numeric(host, port, *args, **kwargs):
        kwargs["flags"] = kwargs.get("flags", 0) | socket.AI_NUMERICHOST
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(fetch.socket, "getaddrinfo", numeric)


def fake_resolver(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    looked_up: list[str] = []

    def resolve(host, port, *args, **kwargs):
        looked_up.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port)) for addr in table[host]]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", resolve)
    return looked_up


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://93.184.215.14/x",
        "gopher://93.184.215.14:70/_",
        "javascript:alert(1)",
        "93.184.215.14/no-scheme",
        "",
    ],
)
def test_non_http_schemes_are_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(BadInput, match="scheme"):
        check_url(url, allow_private=allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", ["http://", "https:///path", "http://:8080/x"])
def test_missing_host_is_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(BadInput, match="no host"):
        check_url(url, allow_private=allow_private)


PRIVATE = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8000/admin",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://127.1/",  # shorthand for 127.0.0.1
    "http://93.184.215.14@127.0.0.1/",  # the public address is userinfo; the host is loopback
    "HTTPS://10.0.0.1/",
]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(BadInput, match="private or local"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_addresses_are_allowed_when_configured(url: str) -> None:
    check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/", "https://1.1.1.1:8443/a?b=c", "http://[2606:4700:4700::1111]/", "HTTP://8.8.8.8"]
)
def test_public_addresses_are_accepted(url: str) -> None:
    check_url(url, allow_private=False)


def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = fake_resolver(
        monkeypatch, {"public.example": ["93.184.215.14"], "sneaky.example": ["93.184.215.14", "10.1.2.3"]}
    )
    check_url("https://public.example/video", allow_private=False)
    with pytest.raises(BadInput, match=r"10\.1\.2\.3"):
        check_url("https://sneaky.example/video", allow_private=False)
    assert looked_up == ["public.example", "sneaky.example"]


def test_unresolvable_name_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, {})
    with pytest.raises(BadInput, match="cannot resolve"):
        check_url("https://nowhere.invalid/", allow_private=False)


@pytest.mark.parametrize("url", ["http://93.184.215.14:99999/", "http://93.184.215.14:abc/", "http://[::1/"])
def test_malformed_urls_are_bad_input(url: str) -> None:
    with pytest.raises(BadInput):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://a..example.com/x.mp3", f"https://{'a' * 64}.example/x.mp3"])
def test_malformed_host_names_are_bad_input(url: str) -> None:
    """The resolver's IDNA encoding refuses an empty label or one over 63 characters with a UnicodeError (a 500
    from the API before); no lookup is made."""
    with pytest.raises(BadInput, match="malformed host name"):
        check_url(url, allow_private=False)


def test_allow_private_skips_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = fake_resolver(monkeypatch, {})
    check_url("http://intranet.local/x.mp4", allow_private=True)
    assert looked_up == []


# --- media_urls and download -----------------------------------------------------------------------------------


def test_media_urls_lists_top_level_and_requested_formats_in_order() -> None:
    info = {"url": "https://a/x", "requested_formats": [{"url": "https://b/v"}, {"format_id": "no-url"}, {"url": ""}]}
    assert media_urls(info) == ["https://a/x", "https://b/v"]


@pytest.mark.parametrize("info", [{}, {"url": None, "requested_formats": None}, {"requested_formats": []}])
def test_media_urls_without_urls_is_empty(info: dict) -> None:
    assert media_urls(info) == []


def test_media_urls_from_split_formats_only() -> None:
    info = {"requested_formats": [{"url": "https://cdn/video"}, {"url": "https://cdn/audio"}]}
    assert media_urls(info) == ["https://cdn/video", "https://cdn/audio"]


# What `download` does with these URLs (and with redirects, fragments, rebinding DNS) is tested against real yt-dlp
# and loopback servers in test_fetch_connect_gate.py: test_a_page_whose_single_media_is_internal_is_refused is the
# case of a public page pointing at a private media URL.
