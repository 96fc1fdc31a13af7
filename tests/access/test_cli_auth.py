"""``citygrid users ...`` and ``citygrid clients ...``, as an administrator types them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from citygrid.access import accounts
from citygrid.access.models import Account, ApiClient
from citygrid.cli import app
from citygrid.kit import i18n
from citygrid.kit.db import dispose_engines, make_engine, unit_of_work
from citygrid.kit.settings import DEMO_SECRET, get_settings, normalise_database_url
from tests.access.auth_factories import FAST_HASHING, PASSWORD, fast_settings
from tests.conftest import IN_CI, POSTGRES_URL
from tests.fixtures_territory import MINI_CITY_PATH

runner = CliRunner()


@dataclass
class CliDatabase:
    """A migrated database with the mini city, and the options that point the CLI at it."""

    url: str
    options: list[str]

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        result = runner.invoke(app, [*args, *self.options], input=stdin)
        return result.exit_code, result.output


def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYGRID_DEFAULT_LOCALE", "en")
    monkeypatch.setenv("CITYGRID_DEMO_MODE", "true")
    for name, value in FAST_HASHING.items():
        monkeypatch.setenv(f"CITYGRID_{name.upper()}", str(value))


def _prepare(database: CliDatabase) -> CliDatabase:
    for command in (["db", "upgrade"], ["territory", "import", str(MINI_CITY_PATH)]):
        code, output = database.run(*command)
        assert code == 0, output
    return database


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliDatabase]:
    """A fresh database per test (the CLI commits), on SQLite or PostgreSQL."""
    _env(monkeypatch)
    if request.param == "sqlite":
        path = tmp_path / "city.sqlite3"
        monkeypatch.setenv("CITYGRID_DATABASE_URL", "sqlite:///unused.sqlite3")
        get_settings.cache_clear()
        yield _prepare(CliDatabase(url=f"sqlite:///{path}", options=["--db", str(path)]))
        dispose_engines()
        i18n.set_locale(i18n.DEFAULT_LOCALE)
        return
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is unreachable: {exc}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"citygrid_cli_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalise_database_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("CITYGRID_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield _prepare(CliDatabase(url=url, options=[]))
    finally:
        dispose_engines()
        i18n.set_locale(i18n.DEFAULT_LOCALE)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stored_accounts(database: CliDatabase) -> dict[str, Account]:
    with unit_of_work(database.url) as session:
        return {account.username: account for account in session.scalars(select(Account))}


def stored_clients(database: CliDatabase) -> dict[str, ApiClient]:
    with unit_of_work(database.url) as session:
        return {client.client_id: client for client in session.scalars(select(ApiClient))}


# ----------------------------------------------------------------------------- users


def test_create_a_grid_worker_with_the_password_on_stdin(cli_db: CliDatabase) -> None:
    code, output = cli_db.run(
        "users",
        "create",
        "zhangsijun",
        "--role",
        "grid_worker",
        "--scope",
        "440104001001002",
        "--display-name",
        "张思君",
        "--password-stdin",
        stdin=f"{PASSWORD}\n",
    )

    assert code == 0, output
    assert "Created account zhangsijun" in output
    assert "TOTP" not in output
    account = stored_accounts(cli_db)["zhangsijun"]
    assert account.display_name == "张思君"
    assert account.scopes == ["440104001001002"]
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash


def test_the_password_is_asked_twice(cli_db: CliDatabase) -> None:
    code, output = cli_db.run(
        "users",
        "create",
        "zhang",
        "--role",
        "grid_worker",
        "--scope",
        "440104001001002",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )

    assert code == 0, output
    assert output.count("Password") >= 1
    assert PASSWORD not in output  # never echoed
    settings = fast_settings(cli_db.url)
    with unit_of_work(cli_db.url) as session:
        result = accounts.sign_in(
            session, settings, username="zhang", password=PASSWORD, otp=None, address=None
        )
    assert result.ok


def test_a_district_official_gets_a_totp_secret_printed(cli_db: CliDatabase) -> None:
    code, output = cli_db.run(
        "users",
        "create",
        "liu",
        "--role",
        "district_official",
        "--scope",
        "440104",
        "--password-stdin",
        stdin=f"{PASSWORD}\n",
    )

    assert code == 0, output
    secret = stored_accounts(cli_db)["liu"].totp_secret
    assert secret and f"TOTP secret: {secret}" in output
    assert f"otpauth://totp/citygrid:liu?secret={secret}" in output


def test_a_department_officer_needs_a_department(cli_db: CliDatabase) -> None:
    base = ("users", "create", "ps-officer", "--role", "department_officer", "--scope", "440104")

    missing = cli_db.run(*base, "--password-stdin", stdin=f"{PASSWORD}\n")
    given = cli_db.run(
        *base, "--department", "public-security", "--password-stdin", stdin=f"{PASSWORD}\n"
    )

    assert missing[0] == 2
    assert "department" in missing[1]
    assert given[0] == 0, given[1]
    assert stored_accounts(cli_db)["ps-officer"].department == "public-security"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--role", "mayor", "--scope", "440104"), "role"),
        (("--role", "grid_worker", "--scope", "440104"), "scopes"),
        (("--role", "grid_worker", "--scope", "440104001001099"), "scopes"),
        (("--role", "grid_worker", "--scope", "abc"), "scopes"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_creates_nothing(
    cli_db: CliDatabase, args: tuple[str, ...], named: str
) -> None:
    code, output = cli_db.run(
        "users", "create", "someone", *args, "--password-stdin", stdin=f"{PASSWORD}\n"
    )

    assert code == 2
    assert named in output
    assert stored_accounts(cli_db) == {}


def test_a_short_password_or_the_demo_password_outside_the_demo_is_refused(
    cli_db: CliDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("users", "create", "zhang", "--role", "grid_worker", "--scope", "440104001001002")
    short = cli_db.run(*args, "--password-stdin", stdin="short\n")
    monkeypatch.setenv("CITYGRID_DEMO_MODE", "false")
    monkeypatch.setenv("CITYGRID_SECRET_KEY", "a-real-secret-key")
    get_settings.cache_clear()
    demo = cli_db.run(*args, "--password-stdin", stdin=f"{DEMO_SECRET}\n")

    assert short[0] == 2
    assert "password" in short[1]
    assert demo[0] == 2
    assert "demo mode" in demo[1]
    assert stored_accounts(cli_db) == {}


def test_a_taken_name_exits_2(cli_db: CliDatabase) -> None:
    args = ("users", "create", "zhang", "--role", "grid_worker", "--scope", "440104001001002")
    assert cli_db.run(*args, "--password-stdin", stdin=f"{PASSWORD}\n")[0] == 0

    code, output = cli_db.run(*args, "--password-stdin", stdin=f"{PASSWORD}\n")

    assert code == 2
    assert "exists already" in output


def test_disable_and_list(cli_db: CliDatabase) -> None:
    for name, role, scope in (
        ("zhang", "grid_worker", "440104001001002"),
        ("liu", "district_official", "440104"),
    ):
        cli_db.run(
            "users",
            "create",
            name,
            "--role",
            role,
            "--scope",
            scope,
            "--password-stdin",
            stdin=f"{PASSWORD}\n",
        )

    disabled = cli_db.run("users", "disable", "zhang")
    unknown = cli_db.run("users", "disable", "nobody")
    code, listing = cli_db.run("users", "list")

    assert disabled == (0, "Disabled account zhang.\n")
    assert unknown[0] == 2
    assert stored_accounts(cli_db)["zhang"].disabled
    assert code == 0
    lines = listing.splitlines()
    assert lines[0].split() == ["USERNAME", "NAME", "ROLE", "DEPARTMENT", "SCOPE", "TOTP", "STATE"]
    assert lines[1].split() == ["liu", "liu", "district_official", "-", "440104", "yes", "active"]
    assert lines[2].split()[-1] == "disabled"
    secret = stored_accounts(cli_db)["liu"].totp_secret
    assert "$argon2" not in listing
    assert secret is not None and secret not in listing


def test_commands_before_the_schema_exists_say_what_to_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["users", "list", "--db", str(tmp_path / "none.sqlite3")])

    assert result.exit_code == 2
    assert "citygrid db upgrade" in result.output


# ----------------------------------------------------------------------------- clients


def test_create_a_client_prints_its_secret_once_and_stores_a_hash(cli_db: CliDatabase) -> None:
    code, output = cli_db.run(
        "clients", "create", "public-security", "--department", "public-security",
        "--scope", "440104",
    )  # fmt: skip

    assert code == 0, output
    secret = output.split("store it now): ", 1)[1].strip()
    stored = stored_clients(cli_db)["public-security"]
    assert stored.secret_hash.startswith("$argon2id$")
    assert secret not in stored.secret_hash
    settings = fast_settings(cli_db.url)
    with unit_of_work(cli_db.url) as session:
        result = accounts.authenticate_client(
            session, settings, client_id="public-security", client_secret=secret, address=None
        )
    assert result.ok
    listing = cli_db.run("clients", "list")[1]
    assert secret not in listing
    assert "public-security" in listing


def test_a_client_with_an_unknown_department_exits_2(cli_db: CliDatabase) -> None:
    code, output = cli_db.run(
        "clients", "create", "tax", "--department", "tax-office", "--scope", "440104"
    )

    assert code == 2
    assert "department" in output
    assert stored_clients(cli_db) == {}


def test_revoke_a_client(cli_db: CliDatabase) -> None:
    cli_db.run(
        "clients", "create", "civil-affairs", "--department", "civil-affairs", "--scope", "440104"
    )

    revoked = cli_db.run("clients", "revoke", "civil-affairs")
    unknown = cli_db.run("clients", "revoke", "nobody")

    assert revoked == (0, "Revoked API client civil-affairs.\n")
    assert unknown[0] == 2
    assert stored_clients(cli_db)["civil-affairs"].revoked_at is not None
    assert "revoked" in cli_db.run("clients", "list")[1]
