"""``citygrid audit ...``: verify the access log, sign a checkpoint, make keys, show an entry.

``verify`` exits 0 when the log is intact and 1 naming the first altered, removed or inserted
entry (or bad checkpoint) otherwise; 2 for bad input (no schema, an unreadable key).
"""

from __future__ import annotations

import base64
import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError

app = typer.Typer(
    help="The access log: verify it, sign a checkpoint, make a signing key, show an entry.",
    no_args_is_help=True,
)

# Defined here rather than imported: ``citygrid.cli`` imports this module while it loads.
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _unit_of_work(db: Path | None) -> Iterator[Session]:
    """A committed-at-the-end session on the database chosen by ``--db`` or the settings."""
    from citygrid.cli import use_database
    from citygrid.kit.db import unit_of_work
    from citygrid.kit.migrate import current_revision

    url = use_database(db)
    if current_revision(url) is None:
        raise _fail("the database has no schema yet: run `citygrid db upgrade` first")
    with unit_of_work(url) as session:
        yield session


def _cli_actor() -> Actor:
    """Who runs the command, as the log records it (an operator's login, not a resident)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(name=f"cli:{user}"[:100], role="system", kind="system")


def _read_public_key(value: str) -> bytes:
    from citygrid.audit.signing import parse_public_key

    path = Path(value)
    text = path.read_text() if path.is_file() else value
    try:
        return parse_public_key(text)
    except ValueError as exc:
        raise _fail(f"--public-key {value[:60]}: {exc}") from None


def _describe(problem: dict[str, Any]) -> str:
    parts = [str(problem.get("kind", "problem"))]
    if "entry_id" in problem:
        parts.append(f"entry {problem['entry_id']}")
    if "position" in problem:
        parts.append(f"at position {problem['position']}")
    if "positions" in problem:
        first, last = problem["positions"]
        parts.append(f"within positions {first}-{last}")
    if "checkpoint" in problem:
        parts.append(f"checkpoint {problem['checkpoint']}")
    return " ".join(parts) + f": {problem.get('reason', '')}"


@app.command("verify")
def verify(
    db: DbOption = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option(
            "--public-key",
            help="A public key checkpoints may be signed with: a file (PEM or base64) or the "
            "base64 itself; repeat for several. Default: the configured key and the retired "
            "ones (CITYGRID_AUDIT_RETIRED_PUBLIC_KEYS).",
        ),
    ] = None,
) -> None:
    """Recompute every entry's hash and every checkpoint's root; check every signature."""
    from citygrid.audit import service as audit
    from citygrid.audit.signing import SigningKeyMissing, published_public_keys
    from citygrid.kit.settings import get_settings

    with _unit_of_work(db) as session:
        if public_key:
            keys = [_read_public_key(value) for value in public_key]
        else:
            try:
                keys = published_public_keys(get_settings())
            except SigningKeyMissing as exc:
                raise _fail(f"{exc}; or pass --public-key") from None
        report = audit.verify(session, public_keys=keys)
    typer.echo(
        f"checked {report.entries_checked:,} entries and {report.checkpoints_checked:,} "
        f"checkpoints (tree size {report.tree_size:,})"
    )
    if report.problem is not None:
        typer.echo(f"FAILED: {_describe(report.problem)}")
        raise typer.Exit(1)
    typer.echo("OK: the log is intact")


@app.command("checkpoint")
def checkpoint(db: DbOption = None) -> None:
    """Sequence every pending entry and sign a checkpoint now (if the tree grew)."""
    from citygrid.audit import service as audit
    from citygrid.audit.signing import SigningKeyMissing, load_signing_key
    from citygrid.kit.settings import get_settings

    with _unit_of_work(db) as session:
        settings = get_settings()
        try:
            key = load_signing_key(settings)
        except SigningKeyMissing as exc:
            raise _fail(str(exc)) from None
        made = audit.checkpoint(session, key, origin=settings.audit_log_origin)
        size = audit.tree_size(session)
    if made is None:
        typer.echo(f"nothing new: the latest checkpoint covers all {size:,} entries")
        return
    typer.echo(f"signed checkpoint {made.id}: {made.tree_size:,} entries, root {made.root_hash}")


@app.command("keygen")
def keygen(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write the private key (mode 0600; never overwritten). "
            "Default: CITYGRID_AUDIT_SIGNING_KEY_FILE.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Make a new Ed25519 signing key: write the private key file, print the public key."""
    from citygrid.audit.signing import (
        generate_seed_b64,
        public_key_pem,
        signing_key_from_seed,
        write_key_file,
    )
    from citygrid.kit.settings import get_settings

    path = out or get_settings().audit_signing_key_file
    seed = generate_seed_b64()
    try:
        write_key_file(path, seed)
    except FileExistsError:
        raise _fail(f"{path} exists; move it away first (keep its public key)") from None
    except OSError as exc:
        raise _fail(f"{path}: {exc.strerror}") from None
    key = signing_key_from_seed(seed)
    typer.echo(f"private key written to {path} (mode 0600)")
    typer.echo(f"key id:     {key.key_id}")
    typer.echo(f"public key: {base64.b64encode(key.public_bytes).decode()}")
    typer.echo(public_key_pem(key.public_bytes).rstrip())


@app.command("public-key")
def public_key() -> None:
    """Print the configured key's public half (what /api/v1/audit/public-key publishes)."""
    from citygrid.audit.signing import SigningKeyMissing, load_signing_key, public_key_pem
    from citygrid.kit.settings import get_settings

    try:
        key = load_signing_key(get_settings())
    except SigningKeyMissing as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"key id:     {key.key_id}")
    typer.echo(f"public key: {base64.b64encode(key.public_bytes).decode()}")
    typer.echo(public_key_pem(key.public_bytes).rstrip())


@app.command("show")
def show(
    entry_id: Annotated[int, typer.Argument(help="The entry's id.", min=1)],
    db: DbOption = None,
) -> None:
    """Print one entry as JSON, with its tree position (the look is itself logged)."""
    from citygrid.audit import service as audit

    with _unit_of_work(db) as session:
        try:
            entry = audit.show_entry(session, _cli_actor(), entry_id=entry_id)
        except CitygridError as error:
            raise _fail(error.message, 1) from None
    body = asdict(entry)
    body["created_at"] = entry.created_at.isoformat()
    typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
