"""Temporal payload encryption (nexus/core/codec.py): whole payloads sealed under the secrets keyring, readable
after a rotation, refused when altered, and transparent to whoever decodes with the same converter."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError

from nexus.core.codec import ENCODING, KEY_ID, EncryptionCodec, PayloadDecryptionError, data_converter, decode_history
from nexus.core.crypto import Keyring, new_key_entry, parse_keys
from nexus.core.settings import Settings

SECRET = "Lighthouse keeper Zanzibar counted seven ships"


def plain(text: str = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'{{"title": "{text}"}}'.encode())


def codec_for(ring: Keyring, **kw: bool) -> EncryptionCodec:
    return EncryptionCodec(lambda: ring, **kw)


async def test_round_trip_hides_the_whole_payload() -> None:
    entry = new_key_entry()
    codec = codec_for(Keyring(parse_keys(entry)))
    original = plain()
    (sealed,) = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING == b"binary/encrypted"
    assert sealed.metadata[KEY_ID] == entry.split("=")[0].encode()
    raw = sealed.SerializeToString()
    assert b"Zanzibar" not in raw and b"json/plain" not in raw  # data and the original metadata alike
    assert await codec.decode([sealed]) == [original]
    (again,) = await codec.encode([original])
    assert again.data != sealed.data  # a fresh nonce every time


async def test_plaintext_passes_through_decoding_and_off_means_not_encrypting() -> None:
    codec = codec_for(Keyring(parse_keys(new_key_entry())))
    untouched = [plain(), Payload(metadata={"encoding": b"binary/null"})]
    assert await codec.decode(untouched) == untouched  # histories written before the codec still replay
    off = codec_for(Keyring(parse_keys(new_key_entry())), encrypt=False)
    assert await off.encode([plain()]) == [plain()]


async def test_rotation_keeps_old_payloads_readable_and_new_ones_use_the_new_key(tmp_path: Path) -> None:
    old, new = new_key_entry(), new_key_entry()
    old_id, new_id = old.split("=")[0], new.split("=")[0]
    key_file = tmp_path / "secret-keys"
    key_file.write_text(old + "\n")
    running = Keyring.from_file(key_file)  # a worker started before the rotation
    codec = codec_for(running)
    (before,) = await codec.encode([plain("before")])

    key_file.write_text(f"{new}\n{old}\n")  # `nexus keys rotate` in another process
    (after,) = await codec_for(Keyring.from_file(key_file)).encode([plain("after")])
    assert after.metadata[KEY_ID] == new_id.encode()
    # The running worker meets the new key id, re-reads the file, and from then on encrypts with the new primary.
    assert await codec.decode([after, before]) == [plain("after"), plain("before")]
    (later,) = await codec.encode([plain("later")])
    assert later.metadata[KEY_ID] == new_id.encode() and before.metadata[KEY_ID] == old_id.encode()

    key_file.write_text(new + "\n")  # the old key dropped: its payloads no longer open, and the error says why
    with pytest.raises(PayloadDecryptionError, match=old_id):
        await codec_for(Keyring.from_file(key_file)).decode([before])


async def test_altered_payloads_and_the_raw_database_key_are_refused() -> None:
    entry = new_key_entry()
    codec = codec_for(Keyring(parse_keys(entry)))
    (sealed,) = await codec.encode([plain()])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError, match="altered"):
        await codec.decode([tampered])
    other = codec_for(Keyring(parse_keys(f"{entry.split('=')[0]}={new_key_entry().split('=')[1]}")))
    with pytest.raises(PayloadDecryptionError):
        await other.decode([sealed])  # same key id, different key
    with pytest.raises(PayloadDecryptionError):
        await codec.decode([Payload(metadata={"encoding": ENCODING, KEY_ID: sealed.metadata[KEY_ID]}, data=b"x")])
    # The payload key is derived (HKDF): the keyring's raw bytes, as the database envelope uses them, do not open it.
    raw_key = parse_keys(entry)[0][1]
    with pytest.raises(InvalidTag):
        AESGCM(raw_key).decrypt(sealed.data[:12], sealed.data[12:], sealed.metadata[KEY_ID])


async def test_failure_messages_are_encrypted_and_decode_transparently() -> None:
    ring = Keyring(parse_keys(new_key_entry()))
    converter = data_converter(Settings(temporal_encryption=True), lambda: ring)
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"enriching failed: {SECRET}", type="StageFailed"), failure)
    assert b"Zanzibar" not in failure.SerializeToString()
    error = await converter.decode_failure(failure)
    assert isinstance(error, ApplicationError) and error.message == f"enriching failed: {SECRET}"
    assert error.type == "StageFailed"

    # With encryption off nothing new is encrypted, but what was encrypted still decodes (open workflows go on).
    off = data_converter(Settings(temporal_encryption=False), lambda: ring)
    assert b"Zanzibar" in (await off.encode([SECRET]))[0].data
    decoded = await off.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.message == f"enriching failed: {SECRET}"


async def test_a_history_decodes_to_what_it_would_be_without_the_codec() -> None:
    ring = Keyring(parse_keys(new_key_entry()))
    converter = data_converter(Settings(), lambda: ring)
    started = HistoryEvent(event_id=1)
    started.workflow_execution_started_event_attributes.input.CopyFrom(
        Payloads(payloads=await converter.encode([SECRET]))
    )
    failed = HistoryEvent(event_id=2)
    await converter.encode_failure(ApplicationError(SECRET), failed.workflow_execution_failed_event_attributes.failure)
    history = WorkflowHistory("wf", [started, failed])
    assert b"Zanzibar" not in b"".join(e.SerializeToString() for e in history.events)

    opened = await decode_history(history, converter.payload_codec)
    assert (await converter.decode(opened.events[0].workflow_execution_started_event_attributes.input.payloads)) == [
        SECRET
    ]
    failure = opened.events[1].workflow_execution_failed_event_attributes.failure
    assert failure.message == SECRET and not failure.HasField("encoded_attributes")
    assert b"Zanzibar" not in history.events[1].SerializeToString()  # the original is left as it was
