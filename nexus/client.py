"""The CLI's HTTP client: the CLI goes through the API like any other client (same auth, same scoping)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from nexus.core.settings import Settings


class ApiError(Exception):
    pass


class NexusClient:
    def __init__(self, settings: Settings) -> None:
        token = settings.api_key.get_secret_value() if settings.api_key else None
        if token is None and settings.api_key_file.exists():
            token = settings.api_key_file.read_text().strip()
        if not token:
            raise ApiError(f"no API key: set NEXUS_API_KEY or run `nexus up` (writes {settings.api_key_file})")
        self.http = httpx.Client(
            base_url=settings.api_base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def _ok(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise ApiError(f"HTTP {resp.status_code}: {detail}")
        return resp

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """The answer's JSON (None when empty); ApiError with the API's message on a 4xx/5xx."""
        resp = self.raw(method, path, **kw)
        return resp.json() if resp.content else None

    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The answer itself (a file, not JSON), checked like `request`."""
        try:
            return self._ok(self.http.request(method, path, **kw))
        except httpx.ConnectError as exc:
            raise ApiError(f"cannot reach the API at {self.http.base_url}: is `nexus up` running?") from exc

    def submit(self, target: str, title: str | None) -> dict:
        path = Path(target)
        if path.exists():
            with path.open("rb") as fh:
                data = {"source": "file", **({"title": title} if title else {})}
                return self.request("POST", "/api/media/upload", files={"file": (path.name, fh)}, data=data)
        if "://" not in target:
            raise ApiError(f"{target!r} is neither an existing file nor a URL")
        return self.request("POST", "/api/media/process", json={"source": "url", "url": target, "title": title})

    def events(self, job_id: str) -> Iterator[dict]:
        for _, data in self.sse("GET", f"/api/jobs/{job_id}/events"):
            yield data

    def sse(self, method: str, path: str, **kw: Any) -> Iterator[tuple[str, dict]]:
        """(event name, data) pairs of a server-sent event stream."""
        try:
            with self.http.stream(method, path, timeout=None, **kw) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._ok(resp)
                name = "message"
                for line in resp.iter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        yield name, json.loads(line[5:])
                        name = "message"
        except httpx.ConnectError as exc:
            raise ApiError(f"cannot reach the API at {self.http.base_url}: is `nexus up` running?") from exc
