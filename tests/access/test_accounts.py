"""Creating accounts and API clients: roles, territorial scope, passwords, second factors,
and the demo's accounts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from citygrid.access import accounts, passwords, totp
from citygrid.access.demo_accounts import create_demo_accounts, demo_accounts_in
from citygrid.access.models import Account, ApiClient
from citygrid.kit.errors import Conflict, NotFound, ValidationFailed
from citygrid.kit.i18n import set_locale
from citygrid.kit.models import utcnow
from citygrid.kit.settings import DEMO_SECRET, Settings
from tests.access.auth_factories import (
    ADMIN,
    PASSWORD,
    SEED_GRID,
    fast_settings,
    fast_settings_fixture,  # noqa: F401 (fixture)
    make_account,
    make_client,
)
from tests.fixtures_territory import import_mini_city


@pytest.fixture(autouse=True)
def _english() -> None:
    set_locale("en")


@pytest.fixture
def city(db_session: Session) -> Session:
    import_mini_city(db_session)
    return db_session


def refused_field(error: pytest.ExceptionInfo[ValidationFailed]) -> str:
    field: str = error.value.details[0]["field"]
    return field


# ----------------------------------------------------------------------------- roles and scope


@pytest.mark.parametrize(
    ("role", "department", "scope"),
    [
        ("grid_worker", None, "440104001001002"),
        ("community_official", None, "440104001001"),
        ("street_official", None, "440104001"),
        ("district_official", None, "440104"),
        ("city_official", None, "440100"),
        ("dispatcher", None, "440104"),
        ("department_officer", "civil-affairs", "440104001"),
        ("department_officer", "water-affairs", "440104"),
        ("auditor", None, "440104"),
        ("admin", None, "440100"),
    ],
)
def test_each_role_takes_a_scope_of_its_level(
    city: Session, settings: Settings, role: str, department: str | None, scope: str
) -> None:
    created = make_account(
        city, settings, "someone", role=role, department=department, scopes=(scope,)
    )

    assert created.account.scopes == [scope]
    assert created.account.role == role


@pytest.mark.parametrize(
    ("role", "scope"),
    [
        ("grid_worker", "440104001001"),  # a community, not a grid
        ("community_official", "440104001"),
        ("street_official", "440104"),
        ("district_official", "440100"),  # the city is not a district
        ("dispatcher", "440104001"),
        ("auditor", "440104001"),
        ("admin", "440104001001002"),
    ],
)
def test_a_scope_of_the_wrong_level_is_refused(
    city: Session, settings: Settings, role: str, scope: str
) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_account(city, settings, "someone", role=role, scopes=(scope,))

    assert refused_field(error) == "scopes"
    assert scope in error.value.message


@pytest.mark.parametrize(
    "scope", ["440104001001099", "44010400100", "4401O4", "", "440104001001002 OR 1=1"]
)
def test_a_scope_that_is_no_unit_is_refused(city: Session, settings: Settings, scope: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_account(city, settings, "someone", scopes=(scope,))

    assert refused_field(error) == "scopes"
    assert city.scalars(select(Account)).all() == []


def test_several_scopes_are_kept_once_each(city: Session, settings: Settings) -> None:
    created = make_account(
        city,
        settings,
        "someone",
        role="street_official",
        scopes=("440104001", "440104002", "440104001"),
    )

    assert created.account.scopes == ["440104001", "440104002"]


def test_no_scope_is_refused(city: Session, settings: Settings) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_account(city, settings, "someone", scopes=())

    assert refused_field(error) == "scopes"


@pytest.mark.parametrize(
    ("role", "department", "field"),
    [
        ("department_officer", None, "department"),
        ("department_officer", "tax-office", "department"),
        ("grid_worker", "public-security", "department"),
        ("mayor", None, "role"),
    ],
)
def test_roles_and_departments_are_checked(
    city: Session, settings: Settings, role: str, department: str | None, field: str
) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_account(
            city, settings, "someone", role=role, department=department, scopes=("440104",)
        )

    assert refused_field(error) == field


# ----------------------------------------------------------------------------- names, passwords


@pytest.mark.parametrize("username", ["a", "Has Space", "名字", "-dash-first", "x" * 65])
def test_bad_user_names_are_refused(city: Session, settings: Settings, username: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_account(city, settings, username)

    assert refused_field(error) == "username"


def test_a_taken_user_name_is_a_conflict(city: Session, settings: Settings) -> None:
    make_account(city, settings, "zhang")

    with pytest.raises(Conflict):
        make_account(city, settings, "ZHANG")


@pytest.mark.parametrize("password", ["short", "x" * 1025, "zhangzhang"])
def test_weak_passwords_are_refused(city: Session, settings: Settings, password: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_account(city, settings, "zhangzhang", password=password)

    assert refused_field(error) == "password"


def test_the_demo_password_is_refused_outside_demo_mode(city: Session, database_url: str) -> None:
    production = fast_settings(database_url, demo_mode=False, secret_key="a-real-secret-key")

    with pytest.raises(ValidationFailed) as error:
        make_account(city, production, "zhang", password=DEMO_SECRET)
    with pytest.raises(ValidationFailed):
        accounts.create_client(
            city,
            ADMIN,
            settings=production,
            client_id="public-security",
            department="public-security",
            scopes=("440104",),
            secret=DEMO_SECRET,
        )

    assert "demo mode" in error.value.message
    demo = fast_settings(database_url, demo_mode=True)
    assert make_account(city, demo, "zhang", password=DEMO_SECRET).account.id


def test_passwords_and_client_secrets_are_stored_only_as_argon2id_hashes(
    city: Session, settings: Settings
) -> None:
    account = make_account(city, settings, "zhang").account
    created = make_client(city, settings)

    assert account.password_hash.startswith("$argon2id$")
    assert created.client.secret_hash.startswith("$argon2id$")
    # Nothing in either table holds the plaintext.
    for table in ("accounts", "api_clients"):
        for row in city.execute(text(f"SELECT * FROM {table}")):  # noqa: S608 - fixed names
            assert not any(PASSWORD in str(value) for value in row)
            assert not any(created.secret in str(value) for value in row)


def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(
    city: Session, settings: Settings, database_url: str
) -> None:
    make_account(city, settings, "zhang")
    stronger = fast_settings(database_url, password_hash_memory_kib=2048, password_hash_time_cost=2)

    result = accounts.sign_in(
        city, stronger, username="zhang", password=PASSWORD, otp=None, address="10.0.0.1"
    )

    assert result.ok
    account = city.scalars(select(Account).where(Account.username == "zhang")).one()
    assert "m=2048,t=2" in account.password_hash
    assert passwords.verify_password(stronger, account.password_hash, PASSWORD)
    assert not passwords.needs_rehash(stronger, account.password_hash)


# ----------------------------------------------------------------------------- second factor


@pytest.mark.parametrize(
    ("role", "department", "scope", "needs_totp"),
    [
        ("grid_worker", None, "440104001001002", False),
        ("community_official", None, "440104001001", False),
        ("street_official", None, "440104001", False),
        ("district_official", None, "440104", True),
        ("city_official", None, "440100", False),  # reveals nothing
        ("dispatcher", None, "440104", True),
        ("department_officer", "public-security", "440104", True),
        ("department_officer", "public-security", "440104001", False),  # a street only
        ("department_officer", "civil-affairs", "440100", True),
        ("department_officer", "housing-construction", "440104", False),  # reveals nothing
        ("auditor", None, "440104", False),
        ("admin", None, "440104", False),
    ],
)
def test_totp_is_required_exactly_where_a_district_or_more_may_be_revealed(
    city: Session,
    settings: Settings,
    role: str,
    department: str | None,
    scope: str,
    needs_totp: bool,
) -> None:
    created = make_account(
        city, settings, "someone", role=role, department=department, scopes=(scope,)
    )

    assert (created.totp_secret is not None) is needs_totp
    assert accounts.needs_totp(created.account) is needs_totp


def test_codes_are_accepted_within_one_step_of_drift() -> None:
    secret = totp.new_secret()
    now = utcnow()
    step = totp.time_step(now)

    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, totp.code_at(secret, step + offset), now=now) == (
            step + offset
        )
    for offset in (-3, 3):
        assert totp.matching_step(secret, totp.code_at(secret, step + offset), now=now) is None
    assert totp.matching_step(secret, "12345", now=now) is None
    assert totp.matching_step(secret, "abcdef", now=now) is None


def test_the_provisioning_uri_names_the_account_and_issuer() -> None:
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "liu")

    assert uri.startswith("otpauth://totp/citygrid:liu?")
    assert "secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" in uri
    assert "issuer=citygrid" in uri


def test_resetting_totp_gives_a_new_secret_and_forgets_the_last_step(
    city: Session, settings: Settings
) -> None:
    created = make_account(city, settings, "liu", role="district_official", scopes=("440104",))
    created.account.totp_last_step = 123
    city.flush()

    secret = accounts.reset_totp(city, ADMIN, username="liu")

    assert secret != created.totp_secret
    assert created.account.totp_last_step is None


# ----------------------------------------------------------------------------- disabling, clients


def test_disabling_an_account_ends_its_sessions(city: Session, settings: Settings) -> None:
    from citygrid.access import sessions

    account = make_account(city, settings, "zhang").account
    token = sessions.start_session(city, settings, account_id=account.id, client_address=None)

    accounts.disable_account(city, ADMIN, username="zhang")

    assert sessions.resume_session(city, settings, token=token) is None
    with pytest.raises(NotFound):
        accounts.disable_account(city, ADMIN, username="nobody")


def test_a_session_of_an_account_is_live_until_its_limits(
    city: Session, settings: Settings
) -> None:
    from citygrid.access import sessions

    account = make_account(city, settings, "zhang").account
    opened = utcnow() - timedelta(hours=1)
    token = sessions.start_session(
        city, settings, account_id=account.id, client_address="10.0.0.1", now=opened
    )

    assert sessions.resume_session(city, settings, token=token, now=opened) is not None
    later = opened + timedelta(minutes=29)
    assert sessions.resume_session(city, settings, token=token, now=later) is not None
    much_later = later + timedelta(minutes=31)
    assert sessions.resume_session(city, settings, token=token, now=much_later) is None


def test_a_client_secret_is_random_and_shown_once(city: Session, settings: Settings) -> None:
    first = make_client(city, settings, "public-security")
    second = make_client(city, settings, "civil-affairs", department="civil-affairs")

    assert len(first.secret) >= 40
    assert first.secret != second.secret
    with pytest.raises(Conflict):
        make_client(city, settings, "public-security")


def test_a_client_needs_a_known_department(city: Session, settings: Settings) -> None:
    with pytest.raises(ValidationFailed) as error:
        make_client(city, settings, "tax", department="tax-office")

    assert refused_field(error) == "department"


# ----------------------------------------------------------------------------- the demo


def test_the_demo_has_one_account_per_role_and_one_client_per_department(
    city: Session, settings: Settings
) -> None:
    made = create_demo_accounts(city, password=DEMO_SECRET, settings=settings)

    people = {item.name: item for item in made if item.kind == "account"}
    systems = [item.name for item in made if item.kind == "client"]
    assert list(people) == [
        "zhangsijun",
        "community-official",
        "street-official",
        "district-official",
        "yuexiu-dispatcher",
        "ps-officer",
        "fp-officer",
        "ca-officer",
        "ss-officer",
        "rh-officer",
        "hc-officer",
        "um-officer",
        "ls-officer",
        "pw-officer",
        "tr-officer",
        "auditor",
        "admin",
    ]
    assert {item.role for item in people.values()} == {
        "grid_worker",
        "community_official",
        "street_official",
        "district_official",
        "dispatcher",
        "department_officer",
        "auditor",
        "admin",
    }
    assert people["zhangsijun"].scopes == ("440104001001002",)
    assert people["ps-officer"].department == "public-security"
    assert systems == [
        "public-security",
        "family-planning",
        "civil-affairs",
        "social-security",
        "rental-housing",
        "housing-construction",
        "water-affairs",
    ]
    with_totp = {name for name, item in people.items() if item.totp_secret}
    assert with_totp == {
        "district-official",
        "yuexiu-dispatcher",
        "ps-officer",
        "fp-officer",
        "ca-officer",
        "ss-officer",
        "rh-officer",
    }
    # What `citygrid demo` prints is read back from the database.
    assert demo_accounts_in(city) == made


def test_every_demo_account_and_client_signs_in_with_the_demo_password(
    city: Session, settings: Settings
) -> None:
    made = create_demo_accounts(city, password=DEMO_SECRET, settings=settings)
    now = utcnow()

    for item in made:
        if item.kind == "account":
            code = totp.code_at(item.totp_secret, totp.time_step(now)) if item.totp_secret else None
            result = accounts.sign_in(
                city, settings, username=item.name, password=DEMO_SECRET, otp=code, address=None
            )
        else:
            result = accounts.authenticate_client(
                city, settings, client_id=item.name, client_secret=DEMO_SECRET, address=None
            )
        assert result.ok, item.name
    assert city.scalars(select(ApiClient.client_id).where(ApiClient.scopes.is_not(None))).all()


def test_the_demo_accounts_are_refused_outside_demo_mode(city: Session, database_url: str) -> None:
    production = fast_settings(database_url, demo_mode=False, secret_key="a-real-secret-key")

    with pytest.raises(ValidationFailed):
        create_demo_accounts(city, password=DEMO_SECRET, settings=production)

    assert city.scalars(select(Account)).all() == []


def test_the_demo_seed_grid_worker_is_scoped_to_the_seed_grid(
    city: Session, settings: Settings
) -> None:
    create_demo_accounts(city, password=DEMO_SECRET, settings=settings)

    worker = city.scalars(select(Account).where(Account.username == "zhangsijun")).one()
    assert worker.scopes == [SEED_GRID]
    assert worker.display_name == "张思君"
