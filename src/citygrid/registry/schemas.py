"""Pydantic v2 shapes of the registry: ``XCreate``, ``XUpdate`` (every field optional; only
the fields a caller sets are applied) and ``XRead`` for each entity, the catalogue shape,
and the conversion of a Pydantic error into ``ValidationFailed``.

Ethnicity is stored as the 2-digit code of GB 3304 (``"01"`` Han ... ``"56"`` Jino): a code
is language-neutral, fits the column, and is what department systems exchange. Input may
give the code or the Chinese name (``"汉族"``); either is stored as the code.
``ETHNIC_GROUPS`` gives the zh/en names for display.

Error reasons never contain the rejected value: it may be personal data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from citygrid.kit.errors import ValidationFailed
from citygrid.kit.models import city_today
from citygrid.registry.idnumber import (
    IdNumberError,
    UsccError,
    normalise_id_number,
    validate_id_number,
    validate_uscc,
)
from citygrid.registry.models import (
    ComponentCondition,
    LifeStatus,
    MaritalStatus,
    OrganisationKind,
    PopulationType,
    RegistrationType,
    ResidenceKind,
    Sex,
    UnitUse,
)

DEPARTMENT_SLUGS: frozenset[str] = frozenset(
    {
        "public-security",
        "family-planning",
        "civil-affairs",
        "social-security",
        "rental-housing",
        "housing-construction",
        "water-affairs",
        "market-regulation",
        "urban-management",
        "landscaping",
        "power-supply",
        "transport",
    }
)

#: The 56 ethnic groups in the order and with the codes of GB 3304: code -> (zh, en).
ETHNIC_GROUPS: dict[str, tuple[str, str]] = {
    f"{number:02d}": names
    for number, names in enumerate(
        (
            ("汉族", "Han"),
            ("蒙古族", "Mongol"),
            ("回族", "Hui"),
            ("藏族", "Tibetan"),
            ("维吾尔族", "Uyghur"),
            ("苗族", "Miao"),
            ("彝族", "Yi"),
            ("壮族", "Zhuang"),
            ("布依族", "Bouyei"),
            ("朝鲜族", "Korean"),
            ("满族", "Manchu"),
            ("侗族", "Dong"),
            ("瑶族", "Yao"),
            ("白族", "Bai"),
            ("土家族", "Tujia"),
            ("哈尼族", "Hani"),
            ("哈萨克族", "Kazakh"),
            ("傣族", "Dai"),
            ("黎族", "Li"),
            ("傈僳族", "Lisu"),
            ("佤族", "Va"),
            ("畲族", "She"),
            ("高山族", "Gaoshan"),
            ("拉祜族", "Lahu"),
            ("水族", "Sui"),
            ("东乡族", "Dongxiang"),
            ("纳西族", "Naxi"),
            ("景颇族", "Jingpo"),
            ("柯尔克孜族", "Kyrgyz"),
            ("土族", "Tu"),
            ("达斡尔族", "Daur"),
            ("仫佬族", "Mulao"),
            ("羌族", "Qiang"),
            ("布朗族", "Blang"),
            ("撒拉族", "Salar"),
            ("毛南族", "Maonan"),
            ("仡佬族", "Gelao"),
            ("锡伯族", "Xibe"),
            ("阿昌族", "Achang"),
            ("普米族", "Pumi"),
            ("塔吉克族", "Tajik"),
            ("怒族", "Nu"),
            ("乌孜别克族", "Uzbek"),
            ("俄罗斯族", "Russian"),
            ("鄂温克族", "Evenki"),
            ("德昂族", "De'ang"),
            ("保安族", "Bonan"),
            ("裕固族", "Yugur"),
            ("京族", "Gin"),
            ("塔塔尔族", "Tatar"),
            ("独龙族", "Derung"),
            ("鄂伦春族", "Oroqen"),
            ("赫哲族", "Hezhen"),
            ("门巴族", "Monba"),
            ("珞巴族", "Lhoba"),
            ("基诺族", "Jino"),
        ),
        start=1,
    )
}
_ETHNICITY_BY_ZH: dict[str, str] = {zh: code for code, (zh, _en) in ETHNIC_GROUPS.items()}

#: Relations of a household member to its head (``"head"`` is the head itself).
RELATIONS_TO_HEAD: frozenset[str] = frozenset(
    {
        "head",
        "spouse",
        "child",
        "child_in_law",
        "grandchild",
        "parent",
        "parent_in_law",
        "grandparent",
        "sibling",
        "other",
    }
)

MOBILE_PATTERN = r"^1[3-9]\d{9}$"
# Area code (3-4 digits starting with 0), optional hyphen, 7-8 digit number, optional extension.
LANDLINE_PATTERN = r"^0\d{2,3}-?\d{7,8}(-\d{1,6})?$"
GRID_CODE_PATTERN = r"^\d{15}$"
# Separators of the parts of a name transcribed from another language (买买提·艾力); look-alike
# dots are normalised to the middle dot U+00B7.
_NAME_DOT = "\u00b7"
_NAME_DOT_LOOKALIKES = str.maketrans(
    {"\u2022": _NAME_DOT, "\u30fb": _NAME_DOT, "\uff0e": _NAME_DOT, "\u2027": _NAME_DOT}
)
_NAME_SEPARATORS = frozenset({_NAME_DOT, " ", "-", "'"})

GridCode = Annotated[str, Field(pattern=GRID_CODE_PATTERN)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Floors = Annotated[int, Field(ge=1, le=200)]
BuiltYear = Annotated[int, Field(ge=1000, le=2100)]
Floor = Annotated[int, Field(ge=-10, le=200)]
UnitNumber = Annotated[str, Field(min_length=1, max_length=16)]
Address = Annotated[str, Field(min_length=1, max_length=200)]
Area = Annotated[float, Field(gt=0, le=1_000_000)]
Mobile = Annotated[str, Field(pattern=MOBILE_PATTERN)]
Landline = Annotated[str, Field(pattern=LANDLINE_PATTERN)]
ClassCode = Annotated[str, Field(pattern=r"^\d{4}$")]
Identifier = Annotated[str, Field(min_length=1, max_length=32)]
Department = Annotated[str, Field(min_length=1, max_length=40)]
OrganisationName = Annotated[str, Field(min_length=1, max_length=200)]
Id = Annotated[int, Field(ge=1)]

_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")


def check_person_name(value: str) -> str:
    """Normalise and check a person's name: 1-50 letters (any script), parts joined by "·",
    a space, a hyphen or an apostrophe."""
    name = value.strip().translate(_NAME_DOT_LOOKALIKES)
    if not 1 <= len(name) <= 50:
        raise ValueError("must be 1 to 50 characters")
    previous_was_separator = True  # a name may not start with a separator
    for character in name:
        if character in _NAME_SEPARATORS:
            if previous_was_separator:
                raise ValueError("separators must stand between letters")
            previous_was_separator = True
        elif character.isalpha():
            previous_was_separator = False
        else:
            raise ValueError("may hold only letters and the separators · - ' and space")
    if previous_was_separator:
        raise ValueError("separators must stand between letters")
    return name


def check_ethnicity(value: str) -> str:
    """The GB 3304 code of an ethnic group given by its code or its Chinese name."""
    value = value.strip()
    if value in ETHNIC_GROUPS:
        return value
    code = _ETHNICITY_BY_ZH.get(value)
    if code is None:
        raise ValueError("must be a GB 3304 code 01-56 or the Chinese name of an ethnic group")
    return code


def check_relation(value: str | None) -> str | None:
    """A known relation to the head of household (or None)."""
    if value is not None and value not in RELATIONS_TO_HEAD:
        raise ValueError("must be one of: " + ", ".join(sorted(RELATIONS_TO_HEAD)))
    return value


def check_department(value: str) -> str:
    """A known department slug."""
    if value not in DEPARTMENT_SLUGS:
        raise ValueError("unknown department")
    return value


#: A valid GB 11643 ID number, normalised (upper-case check character): the fast path
#: itself, not a wrapper around it (a field validator of every row of a bulk import).
check_id_number = normalise_id_number


def check_uscc(value: str | None) -> str | None:
    """A valid GB 32100 unified social credit code, upper-cased (or None)."""
    return None if value is None else validate_uscc(value)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _ReadShape(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ComponentClassIn(BaseModel):
    """One class of the urban component catalogue, as read from the catalogue file."""

    model_config = ConfigDict(frozen=True)

    code: str
    slug: str
    major_code: str
    major_name_zh: str
    major_name_en: str
    name_zh: str
    name_en: str
    owner_department: str

    @field_validator("code")
    @classmethod
    def _four_digits(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}", value):
            raise ValueError("must be 4 digits (2-digit major + 2-digit minor)")
        return value

    @field_validator("slug")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _SLUG.match(value) or len(value) > 40:
            raise ValueError("must be snake_case, at most 40 characters")
        return value

    _department = field_validator("owner_department")(check_department)

    @model_validator(mode="after")
    def _code_is_major_plus_minor(self) -> ComponentClassIn:
        if not self.code.startswith(self.major_code):
            raise ValueError("code must start with its major code")
        return self


# ============================================================================ errors


class FieldProblem(ValueError):
    """A rule broken by one field; raised inside validators, reported as ``{field, reason}``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def validation_failed(exc: ValidationError) -> ValidationFailed:
    """Turn a Pydantic error into ``ValidationFailed`` naming fields, never echoing values."""
    details: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem | IdNumberError | UsccError):
            field, reason = cause.field, cause.reason
        else:
            field = ".".join(str(part) for part in error.get("loc", ())) or "request"
            reason = str(error.get("msg", "invalid"))
            reason = reason.removeprefix("Value error, ")
        details.append({"field": field, "reason": reason})
    message = "; ".join(f"{detail['field']}: {detail['reason']}" for detail in details)
    return ValidationFailed(message, details=details)


ShapeT = TypeVar("ShapeT", bound=BaseModel)


def parse(shape: type[ShapeT], data: ShapeT | Mapping[str, Any]) -> ShapeT:
    """Validate ``data`` as ``shape``; raise ``ValidationFailed`` naming the bad fields."""
    if isinstance(data, shape):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump(exclude_unset=True)
    try:
        return shape.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc) from None


# ============================================================================ buildings


class BuildingCreate(_Shape):
    """A new building; its QR token is issued by the service."""

    grid_code: GridCode
    address: Address
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    lon: Longitude
    lat: Latitude
    floors: Floors
    built_year: BuiltYear | None = None


class BuildingUpdate(_Shape):
    """Changes to a building (only the fields given are applied)."""

    grid_code: GridCode | None = None
    address: Address | None = None
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    lon: Longitude | None = None
    lat: Latitude | None = None
    floors: Floors | None = None
    built_year: BuiltYear | None = None


class BuildingRead(_ReadShape):
    """A building as stored."""

    id: int
    grid_code: str
    address: str
    name: str | None
    lon: float
    lat: float
    floors: int
    built_year: int | None
    qr_token: str
    created_at: datetime
    updated_at: datetime


# ============================================================================ housing units


class HousingUnitCreate(_Shape):
    """A new flat, office or shop; its grid is its building's."""

    building_id: Id
    floor: Floor
    number: UnitNumber
    use: UnitUse
    area_m2: Area | None = None


class HousingUnitUpdate(_Shape):
    """Changes to a housing unit (it cannot move to another building)."""

    floor: Floor | None = None
    number: UnitNumber | None = None
    use: UnitUse | None = None
    area_m2: Area | None = None


class HousingUnitRead(_ReadShape):
    """A housing unit as stored."""

    id: int
    building_id: int
    grid_code: str
    floor: int
    number: str
    use: UnitUse
    area_m2: float | None
    created_at: datetime
    updated_at: datetime


# ============================================================================ households


class HouseholdCreate(_Shape):
    """A new household; with a unit, the grid defaults to (and must be) the unit's."""

    grid_code: GridCode | None = None
    unit_id: Id | None = None
    registration_type: RegistrationType

    @model_validator(mode="after")
    def _grid_or_unit(self) -> HouseholdCreate:
        if self.grid_code is None and self.unit_id is None:
            raise FieldProblem("grid_code", "give a grid code or a housing unit")
        return self


class HouseholdUpdate(_Shape):
    """Changes to a household."""

    grid_code: GridCode | None = None
    unit_id: Id | None = None
    registration_type: RegistrationType | None = None


class HouseholdRead(_ReadShape):
    """A household as stored."""

    id: int
    grid_code: str
    unit_id: int | None
    registration_type: RegistrationType
    created_at: datetime
    updated_at: datetime


# ============================================================================ persons


def check_person_consistency(
    *,
    id_number: str,
    birth_date: date | None,
    sex: Sex | str | None,
    status: LifeStatus | str,
    died_on: date | None,
    household_id: int | None,
    relation_to_head: str | None,
) -> tuple[date, Sex]:
    """Check the rules across a person's fields; return the birth date and sex the ID
    number encodes (they must agree with the given ones)."""
    parsed = validate_id_number(
        id_number, birth_date=birth_date, sex=None if sex is None else str(sex)
    )
    if str(status) == LifeStatus.DECEASED and died_on is None:
        raise FieldProblem("died_on", "required when the person is deceased")
    if died_on is not None:
        if str(status) != LifeStatus.DECEASED:
            raise FieldProblem("died_on", "only for a deceased person")
        if died_on < parsed.birth_date:
            raise FieldProblem("died_on", "before the birth date")
        if died_on > city_today():
            raise FieldProblem("died_on", "in the future")
    if relation_to_head is not None and household_id is None:
        raise FieldProblem("relation_to_head", "only for a member of a household")
    return parsed.birth_date, Sex(parsed.sex)


class PersonCreate(_Shape):
    """A new resident. Birth date and sex, when omitted, are taken from the ID number;
    when given they must agree with it."""

    grid_code: GridCode
    id_number: str
    name: str
    sex: Sex | None = None
    birth_date: date | None = None
    ethnicity: str
    population_type: PopulationType
    household_id: Id | None = None
    relation_to_head: str | None = None
    mobile: Mobile | None = None
    landline: Landline | None = None
    employer_id: Id | None = None
    marital_status: MaritalStatus | None = None
    status: LifeStatus = LifeStatus.ALIVE
    died_on: date | None = None

    _id_number = field_validator("id_number")(check_id_number)
    _name = field_validator("name")(check_person_name)
    _ethnicity = field_validator("ethnicity")(check_ethnicity)
    _relation = field_validator("relation_to_head")(check_relation)

    @model_validator(mode="after")
    def _consistent(self) -> PersonCreate:
        self.birth_date, self.sex = check_person_consistency(
            id_number=self.id_number,
            birth_date=self.birth_date,
            sex=self.sex,
            status=self.status,
            died_on=self.died_on,
            household_id=self.household_id,
            relation_to_head=self.relation_to_head,
        )
        return self


class PersonUpdate(_Shape):
    """Changes to a resident; the rules across fields are checked on the result."""

    grid_code: GridCode | None = None
    id_number: str | None = None
    name: str | None = None
    sex: Sex | None = None
    birth_date: date | None = None
    ethnicity: str | None = None
    population_type: PopulationType | None = None
    household_id: Id | None = None
    relation_to_head: str | None = None
    mobile: Mobile | None = None
    landline: Landline | None = None
    employer_id: Id | None = None
    marital_status: MaritalStatus | None = None
    status: LifeStatus | None = None
    died_on: date | None = None

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str | None) -> str | None:
        return None if value is None else check_id_number(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_person_name(value)

    @field_validator("ethnicity")
    @classmethod
    def _ethnicity(cls, value: str | None) -> str | None:
        return None if value is None else check_ethnicity(value)

    _relation = field_validator("relation_to_head")(check_relation)


class PersonRead(_ReadShape):
    """A resident as stored: personal data, to be served only through the access gateway."""

    id: int
    ref: str
    grid_code: str
    household_id: int | None
    relation_to_head: str | None
    id_number: str
    name: str
    sex: Sex
    birth_date: date
    ethnicity: str
    mobile: str | None
    landline: str | None
    employer_id: int | None
    status: LifeStatus
    died_on: date | None
    population_type: PopulationType
    marital_status: MaritalStatus | None
    created_at: datetime
    updated_at: datetime


# ============================================================================ residences


class ResidenceCreate(_Shape):
    """A person's tie to a housing unit from ``since`` (to ``until``, if known)."""

    person_id: Id
    unit_id: Id
    kind: ResidenceKind
    since: date
    until: date | None = None

    @model_validator(mode="after")
    def _period(self) -> ResidenceCreate:
        if self.until is not None and self.until < self.since:
            raise FieldProblem("until", "before the start of the residence")
        return self


class ResidenceUpdate(_Shape):
    """Changes to a residence (person and unit are fixed: end it and start another)."""

    kind: ResidenceKind | None = None
    since: date | None = None
    until: date | None = None


class ResidenceRead(_ReadShape):
    """A residence as stored."""

    id: int
    person_id: int
    unit_id: int
    grid_code: str
    kind: ResidenceKind
    since: date
    until: date | None
    created_at: datetime
    updated_at: datetime


# ============================================================================ components


class ComponentCreate(_Shape):
    """A new urban component. The identifier defaults to grid code + class code + serial,
    the owner department to the class's."""

    class_code: ClassCode
    grid_code: GridCode
    identifier: Identifier | None = None
    lon: Longitude
    lat: Latitude
    condition: ComponentCondition = ComponentCondition.GOOD
    owner_department: Department | None = None

    @field_validator("owner_department")
    @classmethod
    def _department(cls, value: str | None) -> str | None:
        return None if value is None else check_department(value)


class ComponentUpdate(_Shape):
    """Changes to a component (its class and identifier are fixed)."""

    grid_code: GridCode | None = None
    lon: Longitude | None = None
    lat: Latitude | None = None
    condition: ComponentCondition | None = None
    owner_department: Department | None = None

    @field_validator("owner_department")
    @classmethod
    def _department(cls, value: str | None) -> str | None:
        return None if value is None else check_department(value)


class ComponentRead(_ReadShape):
    """A component as stored."""

    id: int
    class_code: str
    grid_code: str
    identifier: str
    lon: float
    lat: float
    condition: ComponentCondition
    owner_department: str
    created_at: datetime
    updated_at: datetime


# ============================================================================ organisations


class OrganisationCreate(_Shape):
    """A new employer, shop or institution."""

    grid_code: GridCode
    name: OrganisationName
    kind: OrganisationKind
    uscc: str | None = None
    unit_id: Id | None = None

    _uscc = field_validator("uscc")(check_uscc)


class OrganisationUpdate(_Shape):
    """Changes to an organisation."""

    grid_code: GridCode | None = None
    name: OrganisationName | None = None
    kind: OrganisationKind | None = None
    uscc: str | None = None
    unit_id: Id | None = None

    _uscc = field_validator("uscc")(check_uscc)


class OrganisationRead(_ReadShape):
    """An organisation as stored."""

    id: int
    grid_code: str
    name: str
    kind: OrganisationKind
    uscc: str | None
    unit_id: int | None
    created_at: datetime
    updated_at: datetime


# ============================================================================ history


class ChangeRead(_ReadShape):
    """One entry of a registry row's history."""

    id: int
    entity: str
    entity_id: int
    grid_code: str
    action: str
    actor: str
    changed_at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None


# ============================================================================ summary


class GridSummaryRead(BaseModel):
    """What a grid holds, as counts only: no personal data."""

    code: str
    name: str
    name_zh: str
    name_en: str
    buildings: int
    housing_units: int
    households: int
    residents: int
    components: dict[str, int]
