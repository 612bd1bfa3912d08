"""Temporal payloads encrypted at rest: what a workflow carries (questions, transcripts, titles, error messages) is
ciphertext in Temporal's store, its Web UI and its exports, and plaintext only in our processes.

Every client and worker gets its data converter from `data_converter(settings)` (through
`nexus.core.temporal.connect`): pydantic payloads, then this codec, and failures whose message and stack trace
travel as an encoded (so encrypted) attribute instead of in the clear.

Each payload, serialized whole (metadata and data), is sealed with AES-256-GCM under a key derived (HKDF-SHA256,
its own `info`) from the primary key of the keyring that also protects database secrets (`nexus.core.crypto`):
the payload key is never the key bytes the database envelope uses. The result is a payload with metadata
``encoding: binary/encrypted`` and ``encryption-key-id: <kid>``; its data is ``nonce(12) | ciphertext+tag``, and the
key id is bound as associated data. Decoding looks the key up by that id, so after `nexus keys rotate` old
histories stay readable (an unknown id makes the keyring re-read its file once, as for database secrets) for as
long as the old key stays in the keyring: do not `nexus keys drop` a key while Temporal still holds histories
written under it (open workflows, and closed ones within the namespace's retention). Payloads that are not
encrypted pass through decoding unchanged: histories written before the codec, or with it turned off.

`NEXUS_TEMPORAL_ENCRYPTION=false` stops encrypting new payloads; decoding still opens encrypted ones, so open
workflows keep running across the switch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError, Message
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from nexus.core import crypto

if TYPE_CHECKING:
    from nexus.core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
HKDF_INFO = b"nexus temporal payloads"
_NONCE = 12


class PayloadDecryptionError(crypto.DecryptionError):
    """An encrypted payload could not be opened: its key is gone from the keyring, or it was altered."""


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, keyed by the process keyring (see the module docstring)."""

    def __init__(self, keyring: Callable[[], crypto.Keyring] = crypto.keyring, *, encrypt: bool = True) -> None:
        # A callable, not a keyring: `crypto.configure` may replace the process keyring after this client exists.
        self._keyring = keyring
        self._encrypt = encrypt
        self._ciphers: dict[tuple[str, bytes], AESGCM] = {}

    def _cipher(self, kid: str) -> AESGCM:
        try:
            derived = self._keyring().derive(kid, HKDF_INFO)
        except crypto.DecryptionError as exc:
            raise PayloadDecryptionError(
                f"a Temporal payload is encrypted with key {kid!r}, which is not in the keyring "
                "(NEXUS_SECRET_KEYS or the data dir's secret-keys): restore it to read this history"
            ) from exc
        cipher = self._ciphers.get((kid, derived))
        if cipher is None:
            cipher = self._ciphers[(kid, derived)] = AESGCM(derived)
        return cipher

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not self._encrypt:
            return list(payloads)
        kid = self._keyring().primary_id
        cipher = self._cipher(kid)
        sealed = []
        for payload in payloads:
            nonce = os.urandom(_NONCE)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), kid.encode())
            sealed.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=data))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(payload) for payload in payloads]

    def open(self, payload: Payload) -> Payload:
        """The original payload, or the payload itself when it is not encrypted."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        if not kid:
            raise PayloadDecryptionError("an encrypted Temporal payload carries no key id")
        data = payload.data
        try:
            return Payload.FromString(self._cipher(kid).decrypt(data[:_NONCE], data[_NONCE:], kid.encode()))
        except (InvalidTag, ValueError, DecodeError) as exc:
            raise PayloadDecryptionError(
                f"a Temporal payload encrypted with key {kid!r} does not open: it was altered or truncated"
            ) from exc


def data_converter(settings: Settings, keyring: Callable[[], crypto.Keyring] = crypto.keyring) -> DataConverter:
    """The one data converter of every Nexus client and worker: pydantic payloads, encrypted with the process
    keyring unless `NEXUS_TEMPORAL_ENCRYPTION` is off (decoding works either way)."""
    encrypt = settings.temporal_encryption
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring, encrypt=encrypt),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes if encrypt else DefaultFailureConverter,
    )


# --- whole histories -------------------------------------------------------------------------------------------


async def decode_history(history: WorkflowHistory, codec: PayloadCodec | None) -> WorkflowHistory:
    """A copy of `history` with every payload decoded and every failure's encoded message and stack trace put
    back in place: the history as it would read without the codec (to replay with a plain converter, to commit as
    a test fixture, or to read). `fetch_history` returns what the server stores, which is encrypted."""
    events = []
    for event in history.events:
        copy = type(event)()
        copy.CopyFrom(event)
        events.append(copy)
    if codec is not None:
        payloads: list[Payload] = []
        failures: list[Failure] = []
        for event in events:
            _collect(event, payloads, failures)
        for payload, opened in zip(payloads, await codec.decode(payloads), strict=True):
            if opened is not payload:
                payload.CopyFrom(opened)
        for failure in failures:
            _restore_attributes(failure)
    return WorkflowHistory(history.workflow_id, events)


def _collect(message: Message, payloads: list[Payload], failures: list[Failure]) -> None:
    """Every Payload and Failure inside `message`, at any depth (maps and repeated fields included)."""
    if isinstance(message, Payload):
        payloads.append(message)
        return
    if isinstance(message, Failure) and message.HasField("encoded_attributes"):
        failures.append(message)
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _collect(item, payloads, failures)
        elif field.is_repeated:
            for item in value:
                _collect(item, payloads, failures)
        else:
            _collect(value, payloads, failures)


def _restore_attributes(failure: Failure) -> None:
    """What the failure converter does on the way in: message and stack trace back from the encoded attribute."""
    try:
        attrs = json.loads(failure.encoded_attributes.data)
    except ValueError:
        return
    if isinstance(attrs, dict):
        if isinstance(attrs.get("message"), str):
            failure.message = attrs["message"]
        if isinstance(attrs.get("stack_trace"), str):
            failure.stack_trace = attrs["stack_trace"]
        failure.ClearField("encoded_attributes")
