"""``citygrid audit ...`` as an operator or auditor types it, on a real (fresh) database."""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select, text
from typer.testing import CliRunner

from citygrid.audit import service as audit
from citygrid.audit.models import AuditEntry
from citygrid.audit.signing import (
    SigningKey,
    generate_seed_b64,
    public_key_pem,
    signing_key_from_seed,
)
from citygrid.cli import app
from citygrid.kit.db import unit_of_work
from citygrid.kit.settings import get_settings
from tests.audit.conftest import access_record

runner = CliRunner()


@pytest.fixture
def database(
    fresh_database_url: str, audit_seed: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The fresh database as the CLI's; the environment it changes is restored afterwards."""
    monkeypatch.setenv("CITYGRID_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CITYGRID_AUDIT_SIGNING_KEY", audit_seed)
    monkeypatch.setenv("CITYGRID_DEMO_MODE", "true")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield fresh_database_url
    get_settings.cache_clear()


def citygrid(*args: str) -> Result:
    return runner.invoke(app, ["audit", *args])


def fill(url: str, key: SigningKey, count: int, every: int = 5) -> list[int]:
    """Entries appended in batches, a checkpoint after each."""
    ids: list[int] = []
    for start in range(0, count, every):
        with unit_of_work(url) as session:
            ids += [audit.append(session, access_record(n)) for n in range(start, start + every)]
            audit.checkpoint(session, key, origin="citygrid/audit")
    return ids


def position_of(url: str, entry_id: int) -> int:
    with unit_of_work(url) as session:
        leaf = audit.repo.leaf_of_entry(session, entry_id)
        assert leaf is not None
        return leaf.position


def play_attacker(url: str, statement: str, **params: object) -> None:
    """Someone with the database's owner rights drops the guards and changes the log."""
    with unit_of_work(url) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("DROP TRIGGER audit_entries_append_only ON audit_entries"))
        else:
            session.execute(text("DROP TRIGGER audit_entries_no_update"))
            session.execute(text("DROP TRIGGER audit_entries_no_delete"))
        session.execute(text(statement), params)


def test_verify_passes_an_untouched_log(database: str, signing_key: SigningKey) -> None:
    fill(database, signing_key, 20)

    result = citygrid("verify")

    assert result.exit_code == 0, result.output
    assert "checked 20 entries and 4 checkpoints (tree size 20)" in result.output
    assert "OK: the log is intact" in result.output


def test_verify_names_an_edited_entry(database: str, signing_key: SigningKey) -> None:
    ids = fill(database, signing_key, 20)
    play_attacker(
        database, "UPDATE audit_entries SET purpose = 'statistics' WHERE id = :id", id=ids[12]
    )

    result = citygrid("verify")

    assert result.exit_code == 1, result.output
    position = position_of(database, ids[12])
    assert f"FAILED: altered entry {ids[12]} at position {position}: " in result.output
    assert "checked 12 entries" in result.output


def test_verify_names_a_removed_entry(database: str, signing_key: SigningKey) -> None:
    ids = fill(database, signing_key, 10)
    play_attacker(database, "DELETE FROM audit_entries WHERE id = :id", id=ids[3])

    result = citygrid("verify")

    assert result.exit_code == 1
    assert f"FAILED: removed entry {ids[3]} at position 3: " in result.output


def test_verify_names_an_entry_inserted_behind_the_logs_back(
    database: str, signing_key: SigningKey
) -> None:
    fill(database, signing_key, 5)
    with unit_of_work(database) as session:
        forged = audit.append(session, access_record(77))
    # Dated long before the latest checkpoint, as if it had always been there.
    play_attacker(
        database,
        "UPDATE audit_entries SET created_at = '2001-01-01 00:00:00' WHERE id = :id",
        id=forged,
    )

    result = citygrid("verify")

    assert result.exit_code == 1
    assert f"FAILED: inserted entry {forged}: " in result.output


def test_verify_with_keys_given_on_the_command_line(
    database: str, signing_key: SigningKey, tmp_path: Path
) -> None:
    fill(database, signing_key, 5)
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(public_key_pem(signing_key.public_bytes))
    other = signing_key_from_seed(generate_seed_b64()).public_bytes

    with_file = citygrid("verify", "--public-key", str(pem_file))
    with_other = citygrid("verify", "--public-key", base64.b64encode(other).decode())
    with_junk = citygrid("verify", "--public-key", "not-a-key")

    assert with_file.exit_code == 0, with_file.output
    assert with_other.exit_code == 1
    assert "FAILED: bad_signature checkpoint " in with_other.output
    assert with_junk.exit_code == 2
    assert "--public-key not-a-key: " in with_junk.output


def test_checkpoint_signs_now_and_then_has_nothing_new(
    database: str, signing_key: SigningKey
) -> None:
    with unit_of_work(database) as session:
        for n in range(3):
            audit.append(session, access_record(n))

    first = citygrid("checkpoint")
    second = citygrid("checkpoint")

    assert first.exit_code == 0, first.output
    assert re.search(r"signed checkpoint \d+: 3 entries, root \S+=", first.output)
    assert second.exit_code == 0
    assert "nothing new: the latest checkpoint covers all 3 entries" in second.output
    assert citygrid("verify").exit_code == 0


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "audit-signing-key"

    made = runner.invoke(app, ["audit", "keygen", "--out", str(key_file)])
    again = runner.invoke(app, ["audit", "keygen", "--out", str(key_file)])

    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    seed = key_file.read_text().strip()
    key = signing_key_from_seed(seed)
    assert f"key id:     {key.key_id}" in made.output
    assert base64.b64encode(key.public_bytes).decode() in made.output
    assert "-----BEGIN PUBLIC KEY-----" in made.output
    assert seed not in made.output
    assert again.exit_code == 2
    assert "exists" in again.output
    assert key_file.read_text().strip() == seed


def test_show_prints_an_entry_and_logs_the_look(database: str, signing_key: SigningKey) -> None:
    ids = fill(database, signing_key, 5)

    shown = citygrid("show", str(ids[2]))
    missing = citygrid("show", "999999")

    assert shown.exit_code == 0, shown.output
    entry = json.loads(shown.output)
    assert (entry["id"], entry["position"], entry["request_id"]) == (ids[2], 2, "req-2")
    assert entry["subjects"] == ["ref0002", "ref0003"]
    assert missing.exit_code == 1
    with unit_of_work(database) as session:
        [look] = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit_show"))
    assert look.actor.startswith("cli:")
    assert (look.purpose, look.subjects) == ("audit-review", ["ref0002", "ref0003"])


def test_commands_on_a_database_without_schema_say_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", "sqlite:///unused.sqlite3")
    monkeypatch.setenv("CITYGRID_AUDIT_SIGNING_KEY", generate_seed_b64())
    monkeypatch.chdir(tmp_path)

    result = citygrid("verify", "--db", str(tmp_path / "empty.sqlite3"))

    assert result.exit_code == 2
    assert "citygrid db upgrade" in result.output
