"""Object storage behind one small interface: a local directory by default, S3/R2/MinIO via boto3.

Activities on different machines exchange *keys* into this store, never local paths.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from nexus.core.settings import Settings


class ObjectStore(ABC):
    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int: ...

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """(key, last modified) of every object under `prefix`, for sweeps."""

    @abstractmethod
    def read_location(self, key: str, content_type: str, expires_s: int = 300) -> Path | str:
        """Where a browser may read the object (seeking with HTTP Range requests): a local file the API serves
        itself, or a short-lived presigned URL. FileNotFoundError when there is no such object."""

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            self.put_file(key, Path(tmp.name), content_type)
        finally:
            os.unlink(tmp.name)

    def get_bytes(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "obj"
            self.get_file(key, dest)
            return dest.read_bytes()

    def check_writable(self) -> None:
        """Raises unless a probe object can be written, read back and deleted."""
        key = f"_health/{uuid.uuid4().hex}"
        self.put_bytes(key, b"ok")
        try:
            if self.get_bytes(key) != b"ok":
                raise OSError("storage returned different bytes than were written")
        finally:
            self.delete_prefix(key)

    async def acheck_writable(self) -> None:
        await asyncio.to_thread(self.check_writable)


def _safe_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid object key: {key!r}")
    return key


class LocalStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Copy then rename: a reader never sees a half-written object.
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)

    def get_file(self, key: str, dest: Path) -> None:
        src = self._path(key)
        if not src.exists():
            raise FileNotFoundError(f"object not found: {key}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def read_location(self, key: str, content_type: str, expires_s: int = 300) -> Path | str:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"object not found: {key}")
        return path

    def delete_prefix(self, prefix: str) -> int:
        target = self._path(prefix.rstrip("/"))
        if target.is_file():
            target.unlink()
            return 1
        if target.is_dir():
            count = sum(1 for p in target.rglob("*") if p.is_file())
            shutil.rmtree(target)
            return count
        return 0

    def list_objects(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.endswith(".part"):
                key = path.relative_to(self.root).as_posix()
                yield key, datetime.fromtimestamp(path.stat().st_mtime, UTC)


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret,
            region_name=settings.s3_region if settings.s3_region != "auto" else "us-east-1",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, signature_version="s3v4"),
        )

    def _key(self, key: str) -> str:
        key = _safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=extra)

    def get_file(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(dest))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"object not found: {key}") from exc
            raise

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except self.client.exceptions.ClientError:
            return False

    def size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix)
        count = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                count += len(keys)
        return count

    def read_location(self, key: str, content_type: str, expires_s: int = 300) -> Path | str:
        if not self.exists(key):
            raise FileNotFoundError(f"object not found: {key}")
        params = {"Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": content_type}
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))

    def list_objects(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:], obj["LastModified"]


def make_store(settings: Settings) -> ObjectStore:
    url = urlparse(settings.objects_url)
    if url.scheme == "file":
        return LocalStore(Path(url.path))
    if url.scheme == "s3":
        return S3Store(url.netloc, url.path, settings)
    raise ValueError(f"NEXUS_STORAGE_URL must be file://PATH or s3://BUCKET[/PREFIX], got {settings.objects_url!r}")
