"""Secrets at rest: AES-256-GCM envelope encryption with a rotating keyring.

Each value gets its own random data key (DEK); the DEK is wrapped by a key-encryption key (KEK) from the keyring,
and the KEK's id travels with the ciphertext. The value is bound to where it lives (table, column, row id) as
associated data, so a ciphertext copied into another row or column does not decrypt. Rotating the primary key
re-wraps only the small DEKs; the data ciphertext never changes.

Stored form (text):  ``nx1.<kid>.<b64 nonce|wrapped dek>.<b64 nonce|ciphertext>``

The keyring comes from ``NEXUS_SECRET_KEYS`` (``kid=base64key,kid2=...``, the first is primary) or, on embedded
defaults, from ``<data dir>/secret-keys`` (mode 0600; created on first use). A running process re-reads the file
when it meets a key id it does not know, so ``nexus keys rotate`` needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from nexus.core.settings import Settings


VERSION = "nx1"
_NONCE = 12


class DecryptionError(Exception):
    """A stored secret could not be opened: wrong row, tampered, or its key is gone. Never carries the value."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_entry() -> str:
    """A fresh key as one keyring entry (``kid=base64``)."""
    return f"k{secrets.token_hex(4)}={_b64(secrets.token_bytes(32))}"


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """Keyring entries in order (primary first). Refuses malformed keys at once rather than at the first secret."""
    entries: list[tuple[str, bytes]] = []
    for raw in text.replace("\n", ",").split(","):
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        kid, sep, material = raw.partition("=")
        try:
            key = _unb64(material.strip()) if sep else b""
        except (binascii.Error, ValueError):
            key = b""
        if not kid.strip().isalnum() or len(key) != 32:
            raise ValueError(
                "NEXUS_SECRET_KEYS: each entry must be `kid=<32 random bytes, base64>`; "
                "make one with `nexus keys generate`"
            )
        entries.append((kid.strip(), key))
    if not entries:
        raise ValueError("the keyring is empty: set NEXUS_SECRET_KEYS (see `nexus keys generate`)")
    return entries


FOLLOW_FILE_S = 1.0
"""How often a keyring read from a file looks at the file's modification time."""


class Keyring:
    """Key-encryption keys by id; one primary wraps new values, all of them open old ones."""

    def __init__(self, entries: list[tuple[str, bytes]], *, source: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._source = source
        self._stamp = self._file_stamp()
        self._checked_at = time.monotonic()
        self._load(entries)

    def _load(self, entries: list[tuple[str, bytes]]) -> None:
        self._primary = entries[0][0]
        self._keys = dict(entries)

    @property
    def primary_id(self) -> str:
        """The key new values and payloads are sealed with. A keyring read from a file follows the file (checked
        at most every second): after `nexus keys rotate` every running process seals with the new key, instead of
        going on with the old one until its restart, and the old key can really be retired."""
        if self._source is not None and time.monotonic() - self._checked_at >= FOLLOW_FILE_S:
            self._checked_at = time.monotonic()
            if self._file_stamp() != self._stamp:
                self.reload()
        return self._primary

    def _file_stamp(self) -> int | None:
        try:
            return self._source.stat().st_mtime_ns if self._source is not None else None
        except OSError:
            return None

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def fingerprint(self) -> str:
        """Tells two hosts' keyrings apart without revealing them: a digest of each key id and a subkey derived for
        this purpose only (primary first, so a host that missed a rotation differs too)."""
        digest = hashlib.sha256()
        primary = self.primary_id
        for kid in [primary, *sorted(k for k in self._keys if k != primary)]:
            digest.update(kid.encode() + b"\0" + self.derive(kid, b"nexus keyring fingerprint"))
        return digest.hexdigest()[:16]

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        return cls(parse_keys(path.read_text()), source=path)

    def reload(self) -> None:
        """Re-read the key file (another process rotated it)."""
        if self._source is not None:
            with self._lock:
                self._stamp = self._file_stamp()
                self._load(parse_keys(self._source.read_text()))

    def derive(self, kid: str, info: bytes) -> bytes:
        """A 256-bit subkey of key `kid` for another purpose (`info` names it: Temporal payloads), so no two uses
        share key bytes and the raw keys never leave the keyring."""
        if kid not in self._keys:
            self.reload()
        if kid not in self._keys:
            raise DecryptionError(f"unknown key id {kid!r}: it was removed from the keyring")
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(self._keys[kid])

    def _kek(self, kid: str) -> AESGCM:
        if kid not in self._keys:
            self.reload()
        if kid not in self._keys:
            raise DecryptionError(f"unknown key id {kid!r}: it was removed from the keyring")
        return AESGCM(self._keys[kid])

    def seal(self, plaintext: str, context: str) -> str:
        """Encrypt `plaintext` bound to `context` (where it is stored: ``table.column:row_id``)."""
        aad = context.encode()
        dek = AESGCM.generate_key(bit_length=256)
        n1, n2 = os.urandom(_NONCE), os.urandom(_NONCE)
        body = AESGCM(dek).encrypt(n1, plaintext.encode(), aad)
        wrapped = self._kek(self.primary_id).encrypt(n2, dek, aad)
        return f"{VERSION}.{self.primary_id}.{_b64(n2 + wrapped)}.{_b64(n1 + body)}"

    def open(self, sealed: str, context: str) -> str:
        kid, dek = self._unwrap(sealed, context)
        body = _unb64(sealed.split(".")[3])
        try:
            return AESGCM(dek).decrypt(body[:_NONCE], body[_NONCE:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError(f"a secret sealed with key {kid} does not open here") from exc

    def rewrap(self, sealed: str, context: str) -> str:
        """The same value with its data key wrapped by the primary key (the data ciphertext is kept)."""
        kid, dek = self._unwrap(sealed, context)
        if kid == self.primary_id:
            return sealed
        n2 = os.urandom(_NONCE)
        wrapped = self._kek(self.primary_id).encrypt(n2, dek, context.encode())
        return f"{VERSION}.{self.primary_id}.{_b64(n2 + wrapped)}.{sealed.split('.')[3]}"

    def _unwrap(self, sealed: str, context: str) -> tuple[str, bytes]:
        parts = sealed.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise DecryptionError("not a sealed secret")
        kid = parts[1]
        wrapped = _unb64(parts[2])
        try:
            return kid, self._kek(kid).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context.encode())
        except InvalidTag as exc:
            raise DecryptionError(f"a secret sealed with key {kid} does not open here") from exc


def key_id_of(sealed: str) -> str:
    return sealed.split(".")[1]


def ensure_key_file(path: Path) -> Path:
    """The embedded default keyring: one key generated on first use, readable by this user only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key_entry() + "\n")
    return path


_keyring: Keyring | None = None
_keyring_lock = threading.Lock()


def load_keyring(settings: Settings) -> Keyring:
    """The keyring the settings name: the environment's keys, else the data directory's key file."""
    if settings.secret_keys is not None:
        return Keyring(parse_keys(settings.secret_keys.get_secret_value()))
    settings.require_shared()
    return Keyring.from_file(ensure_key_file(settings.secret_keys_file))


def configure(settings: Settings) -> Keyring:
    """Use these settings' keyring in this process (the runtime calls this as it starts)."""
    global _keyring
    with _keyring_lock:
        _keyring = load_keyring(settings)
        return _keyring


def keyring() -> Keyring:
    """The process's keyring (configured by the runtime; else from the global settings)."""
    global _keyring
    with _keyring_lock:
        if _keyring is None:
            from nexus.core.settings import get_settings

            _keyring = load_keyring(get_settings())
        return _keyring


@dataclass(frozen=True)
class Sealed:
    """A secret as stored. Only a `Sealed` can be written to an `EncryptedSecret` column, so plaintext cannot
    reach the database by accident; `repr` never shows even the ciphertext."""

    text: str

    @classmethod
    def of(cls, plaintext: str, context: str) -> Sealed:
        return cls(keyring().seal(plaintext, context))

    def open(self, context: str) -> str:
        return keyring().open(self.text, context)

    @property
    def key_id(self) -> str:
        return key_id_of(self.text)

    def __repr__(self) -> str:
        return f"Sealed(key={self.key_id})"


class EncryptedSecret(sa.types.TypeDecorator[Sealed]):
    """A column of sealed secrets. Writes accept `Sealed` only; reads return `Sealed` (open it with its context)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Sealed):
            raise TypeError("an EncryptedSecret column takes a Sealed value, never plaintext")
        return value.text

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Sealed | None:
        return None if value is None else Sealed(value)
