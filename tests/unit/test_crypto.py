"""Envelope encryption of secrets at rest: bound to their row, rotatable, and never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nexus.core.crypto import (
    DecryptionError,
    EncryptedSecret,
    Keyring,
    Sealed,
    ensure_key_file,
    key_id_of,
    new_key_entry,
    parse_keys,
)

CTX = "integrations.access_token:6c1f0c7e-0000-4000-8000-000000000001"
OTHER_ROW = "integrations.access_token:6c1f0c7e-0000-4000-8000-000000000002"


def ring(*entries: str) -> Keyring:
    return Keyring(parse_keys(",".join(entries)))


def test_a_value_opens_only_where_it_was_sealed() -> None:
    keys = ring(new_key_entry())
    sealed = keys.seal("ya29.secret-token", CTX)
    assert "ya29" not in sealed and keys.open(sealed, CTX) == "ya29.secret-token"
    assert keys.seal("ya29.secret-token", CTX) != sealed  # a fresh data key and nonce every time
    with pytest.raises(DecryptionError):
        keys.open(sealed, OTHER_ROW)  # copied into another row
    with pytest.raises(DecryptionError):
        keys.open(sealed, "integrations.refresh_token:" + CTX.split(":")[1])  # or another column
    tampered = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(DecryptionError):
        keys.open(tampered, CTX)
    with pytest.raises(DecryptionError):
        ring(new_key_entry()).open(sealed, CTX)  # a keyring without its key


def test_rotation_rewraps_the_data_key_and_the_old_key_can_then_go() -> None:
    old, new = new_key_entry(), new_key_entry()
    sealed = ring(old).seal("refresh-me", CTX)
    both = ring(new, old)  # the new key first: primary
    rewrapped = both.rewrap(sealed, CTX)
    assert key_id_of(rewrapped) == new.split("=")[0] != key_id_of(sealed)
    assert rewrapped.split(".")[3] == sealed.split(".")[3]  # the data ciphertext itself is untouched
    assert ring(new).open(rewrapped, CTX) == "refresh-me"
    assert both.rewrap(rewrapped, CTX) == rewrapped  # already on the primary: nothing to do


def test_malformed_keyrings_are_refused_with_a_hint() -> None:
    for bad in ("", "k1=short", "not a key", "k 1=" + new_key_entry().split("=", 1)[1]):
        with pytest.raises(ValueError, match="keys"):
            parse_keys(bad)


def test_the_embedded_key_file_is_private(tmp_path: Path) -> None:
    path = ensure_key_file(tmp_path / "secret-keys")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key_file(path).read_text() == path.read_text()  # created once
    assert len(Keyring.from_file(path).key_ids) == 1


def test_the_column_type_takes_sealed_values_only_and_never_shows_them() -> None:
    column = EncryptedSecret()
    with pytest.raises(TypeError, match="never plaintext"):
        column.process_bind_param("plaintext token", None)  # type: ignore[arg-type]
    sealed = Sealed(ring(new_key_entry()).seal("s3cr3t", CTX))
    assert column.process_bind_param(sealed, None) == sealed.text  # type: ignore[arg-type]
    assert "s3cr3t" not in repr(sealed) and sealed.text not in repr(sealed)


def test_dropping_a_key_keeps_the_others_and_never_the_primary(tmp_path: Path) -> None:
    from nexus.core.crypto import new_key_entry, parse_keys
    from nexus.ops.keys import drop_key

    primary, retired = new_key_entry(), new_key_entry()
    keys = tmp_path / "secret-keys"
    keys.write_text(f"{primary}\n{retired}\n")
    [(primary_id, _), (retired_id, _)] = parse_keys(keys.read_text().replace("\n", ","))
    with pytest.raises(ValueError, match="primary"):
        drop_key(keys, primary_id)
    drop_key(keys, retired_id)
    assert [kid for kid, _ in parse_keys(keys.read_text().strip())] == [primary_id]
    assert keys.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="no key"):
        drop_key(keys, retired_id)


def test_a_keyring_from_a_file_follows_a_rotation_made_by_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running API or worker re-read the file only when it met an unknown key id: after `nexus keys rotate` it
    went on sealing (and encrypting Temporal payloads) with the old key, so the old key could never go."""
    import os

    from nexus.core import crypto

    old, new = new_key_entry(), new_key_entry()
    keys = tmp_path / "secret-keys"
    keys.write_text(f"{old}\n")
    running = Keyring.from_file(keys)
    old_id, new_id = old.split("=")[0], new.split("=")[0]
    assert key_id_of(running.seal("x", CTX)) == old_id
    monkeypatch.setattr(crypto, "FOLLOW_FILE_S", 0.0)
    keys.write_text(f"{new}\n{old}\n")  # what `nexus keys rotate` writes: the new primary first
    os.utime(keys, ns=(keys.stat().st_atime_ns, keys.stat().st_mtime_ns + 1_000_000))  # a coarse clock's tick
    assert running.primary_id == new_id
    sealed = running.seal("y", CTX)
    assert key_id_of(sealed) == new_id and running.open(sealed, CTX) == "y"
    assert running.open(Keyring(parse_keys(old)).seal("z", CTX), CTX) == "z"  # the old key still opens
