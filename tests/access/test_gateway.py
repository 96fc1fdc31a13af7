"""The access gateway, called as services do: scope in SQL, masks by policy, purpose, consent,
and an access-log entry for every look, allowed or denied."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access import consent, gateway
from citygrid.access.policy import POLICY_PATH, Policy
from citygrid.kit import i18n
from citygrid.kit.clock import local_today
from citygrid.kit.errors import CitygridError, ValidationFailed
from citygrid.registry.models import Person
from tests.access.gateway_factories import (  # noqa: F401 - registry_fields_only is a fixture
    CIVIL_AFFAIRS,
    CLERK,
    COMMUNITY_OFFICIAL,
    DISPATCHER,
    GRID,
    GRID_WORKER,
    NEIGHBOUR_GRID,
    OTHER_GRID,
    PUBLIC_SECURITY,
    World,
    entries,
    populate,
    registry_fields_only,
)

PATROL = "patrol-update"


pytestmark = pytest.mark.usefixtures("registry_fields_only")


@pytest.fixture
def world(db_session: Session) -> World:
    return populate(db_session)


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Service calls outside a request speak the default locale; these read English."""
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)


def _by_name(items: list[dict[str, Any]], world: World) -> dict[str, dict[str, Any]]:
    names = {ref: name for name, ref in world.refs.items()}
    return {names[item["ref"]]: item for item in items}


def _refused(session: Session, call: Any) -> CitygridError:
    """Run a gateway call that must fail; log its denial as a route would; return the error."""
    with pytest.raises(CitygridError) as caught:
        call()
    gateway.record_denial(session, caught.value)
    return caught.value


# ----------------------------------------------------------------------------- masks


def test_the_grid_worker_sees_her_grid_masked_as_the_policy_says(
    db_session: Session, world: World
) -> None:
    page = gateway.list_persons(db_session, GRID_WORKER, purpose=PATROL, grid_code=GRID)

    assert page.total == 4
    zhang = _by_name(page.items, world)["张三丰"]
    assert zhang["name"] == "张**"
    assert zhang["id_number"] == "440104************"
    assert zhang["mobile"] == "138****1234"
    assert zhang["landline"] == "********1234"
    assert zhang["birth_date"] == "1985"
    assert zhang["address"] == "***"
    assert zhang["household_ref"] == "***"
    # Fields whose mask shows them as stored, and the opaque ref and grid code.
    assert zhang["sex"] == "M"
    assert zhang["relation_to_head"] == "head"
    assert zhang["ref"] == world.refs["张三丰"] and zhang["grid_code"] == GRID
    # Marital data is hidden from grid workers: absent, not empty.
    assert "marital_status" not in zhang
    assert page.classes == ("identity", "contact", "household_registration")
    assert "name" in page.masked and "sex" not in page.masked


def test_public_security_sees_the_same_residents_in_clear(
    db_session: Session, world: World
) -> None:
    page = gateway.list_persons(
        db_session, PUBLIC_SECURITY, purpose="public-security-duty", grid_code=GRID
    )

    zhang = _by_name(page.items, world)["张三丰"]
    assert zhang["name"] == "张三丰"
    assert zhang["id_number"] == world.id_numbers["张三丰"]
    assert zhang["mobile"] == "13812341234"
    assert zhang["birth_date"] == "1985-03-14"
    assert zhang["address"] == "越秀区府前路 1 号 101"
    assert zhang["household_ref"] == str(world.household_id)
    # Marital status is masked (redacted) for public security, revealable for its duty.
    assert zhang["marital_status"] == "***"
    assert page.masked == ("marital_status",)


def test_each_role_sees_exactly_its_levels(db_session: Session, world: World) -> None:
    dispatcher = gateway.get_person(
        db_session, DISPATCHER, person_ref=world.refs["张三丰"], purpose="case-handling"
    )
    # Dispatchers: identity and contact masked, household registration hidden.
    assert dispatcher.person["name"] == "张**"
    assert dispatcher.person["mobile"] == "138****1234"
    assert "household_ref" not in dispatcher.person
    assert "population_type" not in dispatcher.person
    assert dispatcher.revealable == ("mobile", "landline", "address")


def test_a_person_without_a_residence_has_no_address(db_session: Session, world: World) -> None:
    page = gateway.list_persons(
        db_session, PUBLIC_SECURITY, purpose="public-security-duty", grid_code=GRID
    )
    assert _by_name(page.items, world)["百分%之_百"]["address"] is None


# ----------------------------------------------------------------------------- scope


def test_another_grids_person_is_not_found_and_the_attempt_is_logged(
    db_session: Session, world: World
) -> None:
    outside = world.refs["赵六"]
    error = _refused(
        db_session,
        lambda: gateway.get_person(db_session, GRID_WORKER, person_ref=outside, purpose=PATROL),
    )
    missing = _refused(
        db_session,
        lambda: gateway.get_person(
            db_session, GRID_WORKER, person_ref="nobodyxxxxxxxxxx", purpose=PATROL
        ),
    )

    # Outside the scope and non-existent look the same to the caller ...
    assert error.status_code == missing.status_code == 404
    assert error.to_dict() == missing.to_dict()
    # ... and differ only in the log.
    denied = entries(db_session, outcome="denied")
    assert [(e.action, e.subjects, e.detail["reason"]) for e in denied] == [
        ("read_person", [outside], "out_of_scope"),
        ("read_person", [], "not_found"),
    ]
    assert denied[0].actor == "zhangsijun" and denied[0].purpose == PATROL


def test_a_grid_outside_the_scope_is_not_found(db_session: Session, world: World) -> None:
    for code in (NEIGHBOUR_GRID, OTHER_GRID):
        error = _refused(
            db_session,
            lambda code=code: gateway.list_persons(
                db_session, GRID_WORKER, purpose=PATROL, grid_code=code
            ),
        )
        assert error.status_code == 404
    assert [e.detail["reason"] for e in entries(db_session, outcome="denied")] == [
        "out_of_scope",
        "out_of_scope",
    ]


def test_a_grid_code_must_have_15_digits(db_session: Session, world: World) -> None:
    with pytest.raises(ValidationFailed) as caught:
        gateway.list_persons(db_session, GRID_WORKER, purpose=PATROL, grid_code="440104")
    assert caught.value.details == [{"field": "code", "reason": "must be 15 digits"}]


def test_a_community_official_sees_the_communitys_grids_and_no_other(
    db_session: Session, world: World
) -> None:
    official = COMMUNITY_OFFICIAL
    page = gateway.list_persons(db_session, official, purpose=PATROL, grid_code=GRID)
    assert page.total == 4
    with pytest.raises(CitygridError) as caught:
        gateway.list_persons(db_session, official, purpose=PATROL, grid_code=OTHER_GRID)
    assert caught.value.status_code == 404


def test_an_actor_without_scope_sees_nobody(db_session: Session, world: World) -> None:
    nobody = GRID_WORKER.__class__(name="unscoped", role="grid_worker", scopes=("",))
    with pytest.raises(CitygridError) as caught:
        gateway.get_person(db_session, nobody, person_ref=world.refs["张三丰"], purpose=PATROL)
    assert caught.value.status_code == 404


def test_buildings_units_and_households_list_their_residents(
    db_session: Session, world: World
) -> None:
    def names(**place: Any) -> set[str]:
        page = gateway.list_persons(
            db_session, PUBLIC_SECURITY, purpose="public-security-duty", **place
        )
        return {item["name"] for item in page.items}

    assert names(building_id=world.building_id) == {"张三丰", "李秀英", "王小明"}
    assert names(unit_id=world.unit_ids["101"]) == {"张三丰", "李秀英"}
    assert names(unit_id=world.unit_ids["102"]) == {"王小明"}
    assert names(household_id=world.household_id) == {"张三丰", "李秀英"}


def test_a_building_outside_the_scope_is_not_found(db_session: Session, world: World) -> None:
    error = _refused(
        db_session,
        lambda: gateway.list_persons(
            db_session, GRID_WORKER, purpose=PATROL, building_id=world.other_building_id
        ),
    )
    assert error.status_code == 404
    (denied,) = entries(db_session, outcome="denied")
    assert denied.detail["building_id"] == world.other_building_id


def test_a_role_that_never_sees_household_data_cannot_list_a_household(
    db_session: Session, world: World
) -> None:
    error = _refused(
        db_session,
        lambda: gateway.list_persons(
            db_session, DISPATCHER, purpose="case-handling", household_id=world.household_id
        ),
    )
    assert error.status_code == 403
    assert error.details["field"] == "household_ref"


# ----------------------------------------------------------------------------- purpose


def test_a_purpose_is_required_and_must_be_in_the_catalogue(
    db_session: Session, world: World
) -> None:
    missing = _refused(
        db_session,
        lambda: gateway.list_persons(db_session, GRID_WORKER, purpose=None, grid_code=GRID),
    )
    unknown = _refused(
        db_session,
        lambda: gateway.list_persons(db_session, GRID_WORKER, purpose="curiosity", grid_code=GRID),
    )
    assert (missing.status_code, missing.code) == (400, "purpose_required")
    assert (unknown.status_code, unknown.code) == (400, "unknown_purpose")
    assert unknown.details[0]["field"] == "purpose"
    assert len(entries(db_session, outcome="denied")) == 2
    assert entries(db_session, outcome="allowed") == []


def test_a_purpose_outside_the_role_is_forbidden_and_named(
    db_session: Session, world: World
) -> None:
    error = _refused(
        db_session,
        lambda: gateway.get_person(
            db_session,
            GRID_WORKER,
            person_ref=world.refs["张三丰"],
            purpose="public-security-duty",
        ),
    )
    assert (error.status_code, error.code) == (403, "purpose_not_allowed")
    assert error.details == {"purpose": "public-security-duty"}
    assert "public-security-duty" in error.message


# ----------------------------------------------------------------------------- consent


def _grant(session: Session, world: World, **overrides: Any) -> consent.ConsentRead:
    values: dict[str, Any] = {
        "person_ref": world.refs["张三丰"],
        "requester_department": "civil-affairs",
        "purpose": "allowance-review",
        "field_classes": ["identity", "contact"],
        "valid_from": local_today() - timedelta(days=1),
        "valid_until": local_today() + timedelta(days=30),
        "obtained_via": "paper",
    }
    return consent.grant_consent(session, CLERK, **(values | overrides))


def _read_for_allowance(session: Session, world: World) -> gateway.PersonDetail:
    return gateway.get_person(
        session, CIVIL_AFFAIRS, person_ref=world.refs["张三丰"], purpose="allowance-review"
    )


def test_a_consent_purpose_without_consent_is_refused_naming_what_is_missing(
    db_session: Session, world: World
) -> None:
    error = _refused(db_session, lambda: _read_for_allowance(db_session, world))

    assert (error.status_code, error.code) == (403, "consent_required")
    assert error.details == {
        "person": world.refs["张三丰"],
        "purpose": "allowance-review",
        "requester_department": "civil-affairs",
        "field_classes": ["identity", "contact", "household_registration", "marital"],
    }
    (denied,) = entries(db_session, outcome="denied")
    assert denied.subjects == [world.refs["张三丰"]] and denied.detail["reason"] == (
        "consent_required"
    )


def test_with_consent_the_consented_classes_are_shown_and_the_rest_withheld(
    db_session: Session, world: World
) -> None:
    _grant(db_session, world)

    detail = _read_for_allowance(db_session, world)

    assert detail.person["name"] == "张**"
    assert detail.person["mobile"] == "138****1234"
    assert "household_ref" not in detail.person and "marital_status" not in detail.person
    assert detail.withheld == ("household_registration", "marital")
    (entry,) = entries(db_session, action="read_person")
    assert entry.fields == ["identity", "contact"]


def test_revoked_and_expired_consents_no_longer_count(db_session: Session, world: World) -> None:
    granted = _grant(db_session, world)
    _read_for_allowance(db_session, world)

    consent.revoke_consent(db_session, CLERK, consent_id=granted.id)
    with pytest.raises(CitygridError) as revoked:
        _read_for_allowance(db_session, world)

    _grant(
        db_session,
        world,
        valid_from=local_today() - timedelta(days=60),
        valid_until=local_today() - timedelta(days=1),
    )
    with pytest.raises(CitygridError) as expired:
        _read_for_allowance(db_session, world)

    _grant(db_session, world, valid_from=local_today() + timedelta(days=1))
    with pytest.raises(CitygridError) as not_yet:
        _read_for_allowance(db_session, world)

    assert revoked.value.code == expired.value.code == not_yet.value.code == "consent_required"


def test_a_consent_of_another_department_does_not_count(db_session: Session, world: World) -> None:
    _grant(db_session, world, requester_department="community_official")
    with pytest.raises(CitygridError) as caught:
        _read_for_allowance(db_session, world)
    assert caught.value.code == "consent_required"


def test_a_list_withholds_what_each_person_has_not_consented_to(
    db_session: Session, world: World
) -> None:
    _grant(db_session, world)

    page = gateway.list_persons(
        db_session, CIVIL_AFFAIRS, purpose="allowance-review", grid_code=GRID
    )

    assert page.consent_required
    people = _by_name(page.items, world)
    assert people["张三丰"]["name"] == "张**"
    assert people["张三丰"]["withheld"] == ["household_registration", "marital"]
    assert people["李秀英"] == {
        "ref": world.refs["李秀英"],
        "grid_code": GRID,
        "withheld": ["identity", "contact", "household_registration", "marital"],
    }
    (entry,) = entries(db_session, action="list_persons")
    assert entry.fields == ["identity", "contact"]
    assert entry.detail["withheld"] == 4  # persons with something withheld


# ----------------------------------------------------------------------------- reveal


def test_reveal_unmasks_the_named_fields_and_logs_exactly_them(
    db_session: Session, world: World
) -> None:
    revealed = gateway.reveal(
        db_session,
        GRID_WORKER,
        person_ref=world.refs["张三丰"],
        purpose=PATROL,
        fields=["name", "mobile", "birth_date"],
    )

    assert revealed.fields == {
        "name": "张三丰",
        "mobile": "13812341234",
        "birth_date": "1985-03-14",
    }
    (entry,) = entries(db_session, action="reveal")
    assert entry.fields == ["name", "mobile", "birth_date"]
    assert entry.subjects == [world.refs["张三丰"]] and entry.outcome == "allowed"


def test_reveal_of_a_field_the_role_may_never_see_is_forbidden(
    db_session: Session, world: World
) -> None:
    error = _refused(
        db_session,
        lambda: gateway.reveal(
            db_session,
            GRID_WORKER,
            person_ref=world.refs["张三丰"],
            purpose=PATROL,
            fields=["name", "marital_status"],
        ),
    )
    assert (error.status_code, error.code) == (403, "field_hidden")
    assert error.details == {"field": "marital_status"}
    (denied,) = entries(db_session, outcome="denied")
    assert denied.action == "reveal" and denied.fields == ["marital_status"]
    assert entries(db_session, outcome="allowed") == []


def test_reveal_for_a_purpose_that_does_not_allow_it_names_field_and_purpose(
    db_session: Session, world: World
) -> None:
    error = _refused(
        db_session,
        lambda: gateway.reveal(
            db_session,
            GRID_WORKER,
            person_ref=world.refs["张三丰"],
            purpose="case-handling",
            fields=["id_number"],
        ),
    )
    assert (error.status_code, error.code) == (403, "reveal_not_allowed")
    assert error.details == {
        "field": "id_number",
        "field_class": "identity",
        "purpose": "case-handling",
    }


def test_reveal_outside_the_scope_is_not_found(db_session: Session, world: World) -> None:
    error = _refused(
        db_session,
        lambda: gateway.reveal(
            db_session, GRID_WORKER, person_ref=world.refs["赵六"], purpose=PATROL, fields=["name"]
        ),
    )
    assert error.status_code == 404


def test_reveal_under_consent_needs_consent_for_the_revealed_class(
    db_session: Session, world: World
) -> None:
    _grant(db_session, world, field_classes=["contact"])

    def reveal(fields: list[str]) -> gateway.Revealed:
        return gateway.reveal(
            db_session,
            CIVIL_AFFAIRS,
            person_ref=world.refs["张三丰"],
            purpose="allowance-review",
            fields=fields,
        )

    assert reveal(["mobile"]).fields == {"mobile": "13812341234"}
    error = _refused(db_session, lambda: reveal(["name"]))
    assert error.code == "consent_required" and error.details["field_classes"] == ["identity"]


# ----------------------------------------------------------------------------- no way around


@pytest.mark.parametrize(
    ("options", "field", "status"),
    [
        ({"fields": ["name"]}, "name", 403),
        ({"fields": ["ref", "marital_status"]}, "marital_status", 403),
        ({"sort": "name"}, "name", 403),
        ({"sort": "-mobile"}, "mobile", 403),
        ({"filters": {"marital_status": "married"}}, "marital_status", 403),
        ({"filters": {"id_number": "x"}}, "id_number", 403),
    ],
)
def test_fields_sort_and_filter_on_a_masked_field_are_refused(
    db_session: Session, world: World, options: dict[str, Any], field: str, status: int
) -> None:
    error = _refused(
        db_session,
        lambda: gateway.list_persons(
            db_session, GRID_WORKER, purpose=PATROL, grid_code=GRID, **options
        ),
    )
    assert error.status_code == status
    assert error.details["field"] == field
    assert field in error.message


def test_unknown_fields_are_bad_requests(db_session: Session, world: World) -> None:
    for options in ({"sort": "salary"}, {"fields": ["salary"]}):
        error = _refused(
            db_session,
            lambda options=options: gateway.list_persons(
                db_session,
                PUBLIC_SECURITY,
                purpose="public-security-duty",
                grid_code=GRID,
                **options,
            ),
        )
        assert (error.status_code, error.code) == (400, "unknown_field")


def test_fields_sort_and_filter_work_on_what_the_caller_sees_in_clear(
    db_session: Session, world: World
) -> None:
    page = gateway.list_persons(
        db_session,
        PUBLIC_SECURITY,
        purpose="public-security-duty",
        grid_code=GRID,
        fields=["name", "birth_date"],
        sort="-birth_date",
    )
    assert [item["name"] for item in page.items] == ["百分%之_百", "王小明", "李秀英", "张三丰"]
    assert set(page.items[0]) == {"ref", "grid_code", "name", "birth_date"}

    # Sex is shown as stored even to a grid worker (its mask is "none"): she may filter by it.
    women = gateway.list_persons(
        db_session, GRID_WORKER, purpose=PATROL, grid_code=GRID, filters={"sex": "F"}
    )
    assert [item["ref"] for item in women.items] == [world.refs["李秀英"]]


def test_paging_keeps_the_total(db_session: Session, world: World) -> None:
    first = gateway.list_persons(db_session, GRID_WORKER, purpose=PATROL, grid_code=GRID, limit=3)
    second = gateway.list_persons(
        db_session, GRID_WORKER, purpose=PATROL, grid_code=GRID, limit=3, offset=3
    )
    assert (first.total, second.total) == (4, 4)
    assert len(first.items) == 3 and len(second.items) == 1
    assert not {i["ref"] for i in first.items} & {i["ref"] for i in second.items}
    with pytest.raises(ValidationFailed):
        gateway.list_persons(db_session, GRID_WORKER, purpose=PATROL, grid_code=GRID, limit=0)


# ----------------------------------------------------------------------------- search


def _search(session: Session, actor: Any = GRID_WORKER, **terms: Any) -> gateway.PersonPage:
    return gateway.search_persons(session, actor, purpose=PATROL, **terms)


def test_search_by_name_and_id_number_inside_the_scope(db_session: Session, world: World) -> None:
    exact = _search(db_session, name="张三丰")
    prefix = _search(db_session, name="李", name_prefix=True)
    by_number = _search(db_session, id_number=world.id_numbers["王小明"])

    assert [item["ref"] for item in exact.items] == [world.refs["张三丰"]]
    assert exact.items[0]["name"] == "张**"
    assert [item["ref"] for item in prefix.items] == [world.refs["李秀英"]]
    assert [item["ref"] for item in by_number.items] == [world.refs["王小明"]]
    logged = entries(db_session, action="search_persons")
    assert [(e.detail["criteria"], e.detail["matches"]) for e in logged] == [
        (["name"], 1),
        (["name_prefix"], 1),
        (["id_number"], 1),
    ]
    # The terms themselves are not in the log.
    assert all("张三丰" not in str(e.detail) for e in logged)


def test_a_search_cannot_confirm_a_value_outside_the_scope(
    db_session: Session, world: World
) -> None:
    by_name = _search(db_session, name="赵六")
    by_number = _search(db_session, id_number=world.id_numbers["赵六"])
    assert by_name.total == by_number.total == 0
    assert [e.detail["matches"] for e in entries(db_session, action="search_persons")] == [0, 0]


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"name": "%"}, []),
        ({"name": "_"}, []),
        ({"name": "%", "name_prefix": True}, []),
        ({"name": "张_", "name_prefix": True}, []),
        ({"name": "_三丰"}, []),
        ({"name": "' OR '1'='1"}, []),
        ({"name": "张三丰'--"}, []),
        ({"name": "'; DROP TABLE persons; --"}, []),
        ({"name": "百分%", "name_prefix": True}, ["百分%之_百"]),
        ({"name": "百分%之_百"}, ["百分%之_百"]),
        ({"id_number": "4401%"}, []),
        ({"id_number": "' OR 1=1 --"}, []),
    ],
)
def test_sql_and_like_meta_characters_in_a_search_are_plain_text(
    db_session: Session, world: World, terms: dict[str, Any], expected: list[str]
) -> None:
    page = _search(db_session, **terms)
    assert [item["ref"] for item in page.items] == [world.refs[name] for name in expected]
    assert _search(db_session, name="张三丰").total == 1  # the table is still there


def test_a_search_needs_a_term(db_session: Session, world: World) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _search(db_session, name="  ")
    assert {d["field"] for d in caught.value.details} == {"name", "id_number"}


@pytest.fixture
def identity_hidden_from_auditors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A policy in which auditors never see names or ID numbers."""
    document = tomllib.loads(POLICY_PATH.read_text(encoding="utf-8"))
    document["roles"]["auditor"]["levels"]["identity"] = "hidden"
    policy = Policy(document, source="test")
    monkeypatch.setattr(gateway, "default_policy", lambda: policy)
    gateway._view.cache_clear()
    yield
    gateway._view.cache_clear()


@pytest.mark.usefixtures("identity_hidden_from_auditors")
@pytest.mark.parametrize("terms", [{"name": "张三丰"}, {"id_number": "440104198503141239"}])
def test_searching_by_a_field_hidden_from_the_role_is_forbidden(
    db_session: Session, world: World, terms: dict[str, str]
) -> None:
    auditor = GRID_WORKER.__class__(name="auditor", role="auditor", scopes=("440104",))
    error = _refused(
        db_session,
        lambda: gateway.search_persons(db_session, auditor, purpose="audit-review", **terms),
    )
    assert (error.status_code, error.code) == (403, "field_hidden")
    assert error.details == {"field": next(iter(terms))}


# ----------------------------------------------------------------------------- plug-ins


class AllowanceSource:
    """Allowance data as the exchange will bring it (here: a dict)."""

    fields = ("allowance_status", "allowance_amount")

    def __init__(self, data: dict[int, dict[str, Any]]) -> None:
        self.data = data

    def load(self, session: Session, person_ids: Any) -> dict[int, dict[str, Any]]:
        return {pid: self.data[pid] for pid in person_ids if pid in self.data}


def test_a_field_class_kept_elsewhere_plugs_in_masked_and_audited(
    db_session: Session, world: World
) -> None:
    person_id = db_session.execute(
        select(Person.id).where(Person.ref == world.refs["张三丰"])
    ).scalar_one()
    source = AllowanceSource({person_id: {"allowance_status": "granted", "allowance_amount": 1120}})
    gateway.register_field_source(source)
    try:
        page = gateway.list_persons(db_session, COMMUNITY_OFFICIAL, purpose=PATROL, grid_code=GRID)
        _grant(db_session, world, field_classes=["allowance"])
        revealed = gateway.reveal(
            db_session,
            CIVIL_AFFAIRS,
            person_ref=world.refs["张三丰"],
            purpose="allowance-review",
            fields=["allowance_amount"],
        )
    finally:
        gateway.unregister_field_source(source)

    zhang = _by_name(page.items, world)["张三丰"]
    assert zhang["allowance_status"] == "***" and zhang["allowance_amount"] == "***"
    assert "allowance_status" not in _by_name(page.items, world)["李秀英"]
    assert "allowance" in page.classes
    assert revealed.fields == {"allowance_amount": 1120}
