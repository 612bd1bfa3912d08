"""Object storage: the local default and S3 (boto3 against nanio, a real SigV4-checking S3 server on loopback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from models.base import utcnow
from nexus.core.settings import Settings
from nexus.storage.service import LocalStore, ObjectStore, S3Store, make_store
from tests.harness import free_port, wait_port

ACCESS, SECRET = "nexus-test", "nexus-test-secret-key"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nanio = shutil.which("nanio") or str(Path(sys.executable).parent / "nanio")
    data = tmp_path_factory.mktemp("s3")
    (data / "media").mkdir()  # a bucket is a folder
    port = free_port()
    env = {**os.environ, "NANIO_ACCESS_KEY": ACCESS, "NANIO_SECRET_KEY": SECRET}
    proc = subprocess.Popen(
        [nanio, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _s3(endpoint: str, secret: str = SECRET) -> ObjectStore:
    settings = Settings(
        storage_url="s3://media/nexus",
        s3_endpoint_url=endpoint,
        s3_access_key_id=ACCESS,
        s3_secret_access_key=SecretStr(secret),
    )
    return make_store(settings)


def _exercise(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"\x00audio" * 1000)
    store.put_file("users/u1/media/m1/original.mp3", src, "audio/mpeg")
    store.put_bytes("users/u1/media/m1/audio.wav", b"RIFF....")
    store.put_bytes("users/u1/media/m2/audio.wav", b"other")
    assert store.exists("users/u1/media/m1/original.mp3") and not store.exists("users/u1/media/m9/x")
    assert store.size("users/u1/media/m1/original.mp3") == src.stat().st_size
    store.get_file("users/u1/media/m1/original.mp3", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        store.get_file("users/u1/media/m9/missing", tmp_path / "nope")
    listed = dict(store.list_objects("users/u1"))
    assert set(listed) == {
        "users/u1/media/m1/original.mp3",
        "users/u1/media/m1/audio.wav",
        "users/u1/media/m2/audio.wav",
    }
    assert all(at.tzinfo is not None and abs((at - utcnow()).total_seconds()) < 300 for at in listed.values())
    assert list(store.list_objects("users/nobody")) == []
    # What the player reads: the local file itself, or a presigned URL that answers Range requests.
    where = store.read_location("users/u1/media/m1/original.mp3", "audio/mpeg")
    if isinstance(where, Path):
        assert where.read_bytes() == src.read_bytes()
    else:
        part = httpx.get(where, headers={"Range": "bytes=6-11"})
        assert part.status_code == 206 and part.content == src.read_bytes()[6:12]
        assert part.headers["content-type"] == "audio/mpeg"
        assert httpx.get(where.replace("Signature=", "Signature=0")).status_code == 403
    with pytest.raises(FileNotFoundError):
        store.read_location("users/u1/media/m9/x", "audio/wav")
    assert store.delete_prefix("users/u1/media/m1") == 2
    assert not store.exists("users/u1/media/m1/audio.wav") and store.exists("users/u1/media/m2/audio.wav")
    store.check_writable()
    with pytest.raises(ValueError):
        store.put_bytes("../escape", b"x")


def test_local_store(tmp_path: Path) -> None:
    store = make_store(Settings(data_dir=tmp_path))
    assert isinstance(store, LocalStore)
    _exercise(store, tmp_path)


def test_s3_store_against_a_real_s3_server(s3_endpoint: str, tmp_path: Path) -> None:
    store = _s3(s3_endpoint)
    assert isinstance(store, S3Store)
    _exercise(store, tmp_path)


def test_s3_with_a_wrong_secret_is_refused(s3_endpoint: str) -> None:
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|AccessDenied|403|InvalidAccessKeyId"):
        _s3(s3_endpoint, secret="wrong").check_writable()


def test_unknown_storage_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="NEXUS_STORAGE_URL must be"):
        make_store(Settings(storage_url="ftp://x"))
