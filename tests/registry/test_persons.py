"""A grid worker registers residents; the registry checks what they type and keeps history."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, ValidationFailed
from citygrid.registry import service
from citygrid.registry.idnumber import make_id_number
from citygrid.registry.schemas import ETHNIC_GROUPS
from tests.registry.factories import GRID, OTHER_GRID, UNKNOWN_GRID, person_data, row_counts


def _fails_on(session: Session, actor: Actor, data: dict[str, Any]) -> ValidationFailed:
    """Creating the person fails, names the field, writes nothing and leaks nothing."""
    before = row_counts(session)
    with pytest.raises(ValidationFailed) as caught:
        service.create_person(session, actor, data=data)
    assert row_counts(session) == before
    error = caught.value
    text = str(error.to_dict())
    assert data["id_number"] not in text and data["id_number"][:17] not in text
    if len(data["name"]) > 1:
        assert data["name"] not in text
    return error


def _fields(error: ValidationFailed) -> set[str]:
    return {detail["field"] for detail in error.details}


def test_registering_a_resident_writes_the_person_and_a_history_row(
    city: Session, clerk: Actor
) -> None:
    data = person_data(ethnicity="汉族")

    person = service.create_person(city, clerk, data=data)

    assert person.id and person.grid_code == GRID
    assert person.ethnicity == "01"  # stored as the GB 3304 code
    assert person.status == "alive"
    assert 16 <= len(person.ref) <= 24 and data["id_number"] not in person.ref
    [change] = service.history(city, entity="person", entity_id=person.id)
    assert change.action == "create"
    assert change.actor == "worker-0042"
    assert change.grid_code == GRID
    assert change.before is None
    assert change.after is not None
    assert change.after["birth_date"] == "1985-03-14"
    assert change.after["sex"] == "M"
    assert change.after["ref"] == person.ref


def test_birth_date_and_sex_come_from_the_id_number_when_left_out(
    city: Session, clerk: Actor
) -> None:
    data = person_data(male=False, birth_date=date(2001, 12, 31))
    del data["birth_date"], data["sex"]

    person = service.create_person(city, clerk, data=data)

    assert person.birth_date == date(2001, 12, 31)
    assert person.sex == "F"


def test_names_of_every_people_are_welcome(city: Session, clerk: Actor) -> None:
    for name in ("买买提·艾力", "欧阳娜娜", "阿依古丽•吐尔逊", "Anna-Lena O'Neil", "李"):
        person = service.create_person(city, clerk, data=person_data(name=name))
        assert person.name == name.replace("•", "·")


def _bad_check_character(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (lambda d: {**d, "id_number": _bad_check_character(d["id_number"])}, "id_number"),
        (lambda d: {**d, "id_number": d["id_number"][:17]}, "id_number"),
        (lambda d: {**d, "id_number": d["id_number"] + "1"}, "id_number"),
        (lambda d: {**d, "id_number": "44010419850230123X"}, "id_number"),  # 30 February
        (lambda d: {**d, "birth_date": date(1985, 3, 15)}, "birth_date"),
        (lambda d: {**d, "sex": "F"}, "sex"),
        (lambda d: {**d, "grid_code": UNKNOWN_GRID}, "grid_code"),
        (lambda d: {**d, "grid_code": "4401040010"}, "grid_code"),
        (lambda d: {**d, "mobile": "12800138000"}, "mobile"),
        (lambda d: {**d, "mobile": "1380013800"}, "mobile"),
        (lambda d: {**d, "landline": "20-1234"}, "landline"),
        (lambda d: {**d, "name": ""}, "name"),
        (lambda d: {**d, "name": "王" * 51}, "name"),
        (lambda d: {**d, "name": "王小明1"}, "name"),
        (lambda d: {**d, "name": "·王小明"}, "name"),
        (lambda d: {**d, "ethnicity": "57"}, "ethnicity"),
        (lambda d: {**d, "ethnicity": "火星族"}, "ethnicity"),
        (lambda d: {**d, "population_type": "tourist"}, "population_type"),
        (lambda d: {**d, "status": "deceased"}, "died_on"),
        (lambda d: {**d, "died_on": date(2020, 1, 1)}, "died_on"),
        (lambda d: {**d, "relation_to_head": "head"}, "relation_to_head"),
        (lambda d: {**d, "household_id": 999_999_999}, "household_id"),
        (lambda d: {**d, "employer_id": 999_999_999}, "employer_id"),
        (lambda d: {**d, "shoe_size": 42}, "shoe_size"),
    ],
)
def test_a_wrong_field_is_named_and_nothing_is_written(
    city: Session, clerk: Actor, spoil: Any, field: str
) -> None:
    error = _fails_on(city, clerk, spoil(person_data()))

    assert field in _fields(error)
    assert error.status_code == 422


def test_a_check_character_error_gives_a_reason_without_the_number(
    city: Session, clerk: Actor
) -> None:
    data = person_data()
    error = _fails_on(city, clerk, {**data, "id_number": _bad_check_character(data["id_number"])})

    assert error.details == [{"field": "id_number", "reason": "check character does not match"}]


def test_every_bad_field_is_reported_at_once(city: Session, clerk: Actor) -> None:
    shape = _fails_on(city, clerk, person_data(mobile="123", ethnicity="99", name=""))
    rules = _fails_on(city, clerk, person_data(grid_code=UNKNOWN_GRID, household_id=999_999_999))

    assert _fields(shape) == {"mobile", "ethnicity", "name"}
    assert _fields(rules) == {"grid_code", "household_id"}


def test_the_same_id_number_cannot_be_registered_twice(city: Session, clerk: Actor) -> None:
    data = person_data()
    service.create_person(city, clerk, data=data)
    before = row_counts(city)

    with pytest.raises(Conflict) as caught:
        service.create_person(city, clerk, data={**data, "name": "另一个人"})

    assert row_counts(city) == before
    assert caught.value.details == [{"field": "id_number", "reason": "already registered"}]
    assert data["id_number"] not in str(caught.value.to_dict())


def test_an_update_records_only_the_changed_fields(city: Session, clerk: Actor) -> None:
    person = service.create_person(city, clerk, data=person_data())

    service.update_person(
        city,
        Actor(name="officer-7"),
        person_id=person.id,
        data={"mobile": "13912345678", "name": person.name, "marital_status": "married"},
    )

    changes = service.history(city, entity="person", entity_id=person.id)
    assert [change.action for change in changes] == ["create", "update"]
    update = changes[1]
    assert update.actor == "officer-7"
    assert update.before == {"mobile": "13800138000", "marital_status": None}
    assert update.after == {"mobile": "13912345678", "marital_status": "married"}
    assert person.mobile == "13912345678"


def test_an_update_that_changes_nothing_writes_no_history(city: Session, clerk: Actor) -> None:
    data = person_data()
    person = service.create_person(city, clerk, data=data)
    before = row_counts(city)

    service.update_person(
        city,
        clerk,
        person_id=person.id,
        data={"mobile": data["mobile"], "name": data["name"], "ethnicity": "汉族"},
    )
    service.update_person(city, clerk, person_id=person.id, data={})

    assert row_counts(city) == before
    assert len(service.history(city, entity="person", entity_id=person.id)) == 1


def test_recording_a_death_needs_the_date(city: Session, clerk: Actor) -> None:
    person = service.create_person(city, clerk, data=person_data())
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.update_person(city, clerk, person_id=person.id, data={"status": "deceased"})
    assert _fields(caught.value) == {"died_on"}
    assert row_counts(city) == before

    service.update_person(
        city, clerk, person_id=person.id, data={"status": "deceased", "died_on": "2024-06-01"}
    )
    last = service.history(city, entity="person", entity_id=person.id)[-1]
    assert last.before == {"status": "alive", "died_on": None}
    assert last.after == {"status": "deceased", "died_on": "2024-06-01"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"birth_date": date(1985, 3, 15)}, "birth_date"),
        ({"sex": "F"}, "sex"),
        ({"grid_code": UNKNOWN_GRID}, "grid_code"),
        ({"mobile": "999"}, "mobile"),
        ({"id_number": "44010419850314001"}, "id_number"),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(
    city: Session, clerk: Actor, changes: dict[str, Any], field: str
) -> None:
    person = service.create_person(city, clerk, data=person_data())
    before = row_counts(city)
    snapshot = (person.name, person.birth_date, person.sex, person.grid_code, person.mobile)

    with pytest.raises(ValidationFailed) as caught:
        service.update_person(city, clerk, person_id=person.id, data=changes)

    assert field in _fields(caught.value)
    assert row_counts(city) == before
    assert (person.name, person.birth_date, person.sex, person.grid_code, person.mobile) == (
        snapshot
    )


def test_a_corrected_id_number_brings_its_birth_date_and_sex(city: Session, clerk: Actor) -> None:
    person = service.create_person(city, clerk, data=person_data())
    corrected = make_id_number("440104", date(1985, 4, 14), 2)  # the clerk mistyped the month

    service.update_person(city, clerk, person_id=person.id, data={"id_number": corrected})

    assert person.birth_date == date(1985, 4, 14)
    assert person.sex == "F"
    last = service.history(city, entity="person", entity_id=person.id)[-1]
    assert set(last.after or {}) == {"id_number", "birth_date", "sex"}


def test_a_person_moves_to_another_grid(city: Session, clerk: Actor) -> None:
    person = service.create_person(city, clerk, data=person_data())

    service.update_person(city, clerk, person_id=person.id, data={"grid_code": OTHER_GRID})

    last = service.history(city, entity="person", entity_id=person.id)[-1]
    assert last.grid_code == OTHER_GRID
    assert last.before == {"grid_code": GRID}


def test_a_person_is_found_by_ref_and_deleted_with_a_last_history_row(
    city: Session, clerk: Actor
) -> None:
    person = service.create_person(city, clerk, data=person_data())
    assert service.person_by_ref(city, ref=person.ref) is person
    person_id = person.id

    service.delete_person(city, clerk, person_id=person_id)

    changes = service.history(city, entity="person", entity_id=person_id)
    assert [change.action for change in changes] == ["create", "delete"]
    assert changes[-1].after is None
    assert changes[-1].before is not None and changes[-1].before["ref"] == person.ref


def test_the_56_ethnic_groups_have_codes_and_names_in_both_languages() -> None:
    assert len(ETHNIC_GROUPS) == 56
    assert ETHNIC_GROUPS["01"] == ("汉族", "Han")
    assert ETHNIC_GROUPS["56"] == ("基诺族", "Jino")
    assert len({zh for zh, _en in ETHNIC_GROUPS.values()}) == 56
    assert all(en for _zh, en in ETHNIC_GROUPS.values())


def test_new_refs_are_opaque_and_distinct() -> None:
    refs = {service.new_person_ref() for _ in range(1000)}
    tokens = {service.new_qr_token() for _ in range(1000)}

    assert len(refs) == 1000 and all(len(ref) <= 24 for ref in refs)
    assert len(tokens) == 1000 and all(len(token) == 32 for token in tokens)
