"""Resident identity numbers (GB 11643-1999) and unified social credit codes (GB 32100-2015).

Resident identity number layout (18 characters)::

    DDDDDD YYYYMMDD SSS C
    |      |        |   +-- check character, ISO 7064 MOD 11-2 ("0"-"9" or "X")
    |      |        +------ sequence code; odd for men, even for women
    |      +--------------- date of birth
    +---------------------- administrative division code (county level)

Unified social credit code layout (18 characters, alphabet of 31 characters)::

    A T DDDDDD OOOOOOOOO C
    | | |      |         +-- check character, weighted sum modulo 31
    | | |      +------------ organisation code
    | | +------------------- administrative division code (digits)
    | +--------------------- organisation type
    +----------------------- registration authority

An identity number is personal data: no error raised by this module ever includes the
value being checked, only a short reason and the name of the offending field.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from citygrid.kit.clock import CHINA_STANDARD_TIME, local_today

__all__ = [
    "USCC_CHARSET",
    "IdNumberError",
    "ParsedIdNumber",
    "UsccError",
    "check_character",
    "make_id_number",
    "make_id_numbers",
    "make_uscc",
    "normalise_id_number",
    "parse_id_number",
    "uscc_check_character",
    "validate_id_number",
    "validate_uscc",
]

# --------------------------------------------------------------------------- identity number

_ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_DIGITS = frozenset("0123456789")
_EARLIEST_BIRTH_DATE = date(1900, 1, 1)

#: Province-level prefixes of GB/T 2260 division codes.
_PROVINCE_CODES: frozenset[str] = frozenset(
    f"{n:02d}"
    for n in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
    )
)


class IdNumberError(ValueError):
    """An identity number is invalid or disagrees with another stored field."""

    field: str
    reason: str

    def __init__(self, reason: str, *, field: str = "id_number") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedIdNumber:
    """The components of a valid resident identity number."""

    division_code: str
    birth_date: date
    sequence: str
    sex: Literal["M", "F"]
    check: str

    @property
    def number(self) -> str:
        """Return the normalised 18-character number (upper-case check character)."""
        return f"{self.division_code}{self.birth_date:%Y%m%d}{self.sequence}{self.check}"


def _check_index(first17: str) -> int:
    """The MOD 11-2 weighted sum of 17 ASCII digits, modulo 11, in one C call.

    The weights are 2**17 .. 2**1 modulo 11 (ISO 7064 MOD 11-2), so the sum is
    ``2 * sum(d[i] * 2**(16 - i))`` modulo 11; 13 is 2 modulo 11, so reading the digits as a
    base-13 number gives the same remainder."""
    return 2 * int(first17, 13) % 11


def check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not _DIGITS.issuperset(first17):
        raise ValueError("expected exactly 17 ASCII digits")
    return _ID_CHECK_CHARS[_check_index(first17)]


def _division_problem(division_code: str) -> str | None:
    """Return why a division code is unacceptable, or None if it is acceptable."""
    if len(division_code) != 6 or not _DIGITS.issuperset(division_code):
        return "division code must be 6 digits"
    if division_code[:2] not in _PROVINCE_CODES:
        return "division code has an unknown province-level prefix"
    if division_code[2:] == "0000":
        return "division code must be county-level, not a province code"
    return None


@functools.lru_cache(maxsize=16_384)
def _division_accepted(division_code: str) -> bool:
    """Whether a division code is acceptable (a file names a few thousand at most)."""
    return _division_problem(division_code) is None


@functools.lru_cache(maxsize=65_536)
def _birth_day_accepted(yyyymmdd: str) -> bool:
    """Whether eight ASCII digits are a real calendar date not before 1900-01-01 (the upper
    bound, today, is checked apart: it moves)."""
    try:
        birth_date = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return birth_date >= _EARLIEST_BIRTH_DATE


class _Today:
    """Today's date in the city as ``YYYYMMDD`` text (which sorts as the dates do), computed
    again only after the city's midnight."""

    text = ""
    until = 0.0

    @classmethod
    def get(cls) -> str:
        now = time.time()
        if now >= cls.until:
            today = local_today()
            cls.text = f"{today:%Y%m%d}"
            cls.until = datetime.combine(
                today + timedelta(days=1), datetime.min.time(), tzinfo=CHINA_STANDARD_TIME
            ).timestamp()
        return cls.text


def normalise_id_number(value: str) -> str:
    """A valid identity number, normalised (upper-case check character); IdNumberError
    naming the first problem otherwise. The same rules as ``parse_id_number`` (today as the
    latest birth date) without building its result: this runs for every row of a bulk
    import. The common case, a valid number, costs a few string operations, two cached
    look-ups and the check's one C-level integer conversion; anything else goes through
    ``parse_id_number`` for its precise reason."""
    if (
        isinstance(value, str)
        and len(value) == 18
        and value.isascii()
        and (first17 := value[:17]).isdigit()
        and _division_accepted(value[:6])
        and _birth_day_accepted(birthday := value[6:14])
        and birthday <= _Today.get()
        and (check := value[17].upper()) == _ID_CHECK_CHARS[_check_index(first17)]
    ):
        return first17 + check
    return parse_id_number(value).number


def parse_id_number(value: str, *, today: date | None = None) -> ParsedIdNumber:
    """Parse and validate an 18-character resident identity number."""
    if not isinstance(value, str):
        raise IdNumberError("must be a string")
    if len(value) != 18:
        raise IdNumberError(f"must be 18 characters, got {len(value)}")
    first17 = value[:17]
    if not _DIGITS.issuperset(first17):
        raise IdNumberError("first 17 characters must be digits")
    check = value[17].upper()
    if check != "X" and check not in _DIGITS:
        raise IdNumberError("last character must be a digit or 'X'")

    division_code = value[:6]
    problem = _division_problem(division_code)
    if problem is not None:
        raise IdNumberError(problem)

    try:
        birth_date = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise IdNumberError("birth date is not a real calendar date") from None
    if birth_date < _EARLIEST_BIRTH_DATE:
        raise IdNumberError("birth date is before 1900-01-01")
    if birth_date > (today if today is not None else local_today()):
        raise IdNumberError("birth date is in the future")

    if check_character(first17) != check:
        raise IdNumberError("check character does not match")

    sequence = value[14:17]
    return ParsedIdNumber(
        division_code=division_code,
        birth_date=birth_date,
        sequence=sequence,
        sex="M" if int(sequence) % 2 else "F",
        check=check,
    )


def validate_id_number(
    value: str,
    *,
    birth_date: date | None = None,
    sex: str | None = None,
    today: date | None = None,
) -> ParsedIdNumber:
    """Parse an identity number and require agreement with a stored birth date and sex."""
    parsed = parse_id_number(value, today=today)
    if birth_date is not None and parsed.birth_date != birth_date:
        raise IdNumberError("birth date disagrees with the ID number", field="birth_date")
    if sex is not None:
        if sex not in ("M", "F"):
            raise IdNumberError("sex must be 'M' or 'F'", field="sex")
        if parsed.sex != sex:
            raise IdNumberError("sex disagrees with the ID number's sequence parity", field="sex")
    return parsed


def _check_build_inputs(division_code: str, birth_date: date) -> None:
    """Raise ValueError unless the division code and birth date can start a valid number."""
    problem = _division_problem(division_code)
    if problem is not None:
        raise ValueError(problem)
    if birth_date < _EARLIEST_BIRTH_DATE:
        raise ValueError("birth date is before 1900-01-01")


def make_id_number(division_code: str, birth_date: date, sequence: int) -> str:
    """Build a valid identity number (the birth date is not checked against today)."""
    _check_build_inputs(division_code, birth_date)
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be between 0 and 999")
    first17 = f"{division_code}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def _weighted_sum(digits: str, offset: int) -> int:
    """Return the MOD 11-2 weighted sum of digits placed at positions offset, offset+1, ..."""
    return sum(int(c) * w for c, w in zip(digits, _ID_WEIGHTS[offset:], strict=False))


@functools.cache
def _suffix_rows() -> tuple[dict[int, str], ...]:
    """Return, per partial sum modulo 11, a map from sequence to 'SSS' + check character."""
    seq_sums = [(f"{s:03d}", _weighted_sum(f"{s:03d}", 14)) for s in range(1000)]
    return tuple(
        {
            s: text + _ID_CHECK_CHARS[(partial + ssum) % 11]
            for s, (text, ssum) in enumerate(seq_sums)
        }
        for partial in range(11)
    )


def _birth_date_sum(birth_date: date) -> int:
    """Return the MOD 11-2 weighted sum of the YYYYMMDD digits (positions 7-14)."""
    y, m, d = birth_date.year, birth_date.month, birth_date.day
    return (
        2 * (y // 1000)
        + (y // 100) % 10
        + 6 * ((y // 10) % 10)
        + 3 * (y % 10)
        + 7 * (m // 10)
        + 9 * (m % 10)
        + 10 * (d // 10)
        + 5 * (d % 10)
    )


def make_id_numbers(
    division_code: str, birth_dates: Iterable[date], sequences: Iterable[int]
) -> list[str]:
    """Build many valid identity numbers for one division, pairing dates with sequences."""
    # The division's weighted sum is fixed; each distinct birth date is handled once, giving
    # the 14-character prefix and the row of the precomputed "SSS" + check-character table
    # for its partial sum. Per number, two dict look-ups and one concatenation remain.
    _check_build_inputs(division_code, _EARLIEST_BIRTH_DATE)
    prefix_sum = _weighted_sum(division_code, 0)
    rows = _suffix_rows()
    by_date: dict[date, tuple[str, dict[int, str]]] = {}

    def add_date(birth_date: date) -> tuple[str, dict[int, str]]:
        _check_build_inputs(division_code, birth_date)
        y, m, d = birth_date.year, birth_date.month, birth_date.day
        partial = (prefix_sum + _birth_date_sum(birth_date)) % 11
        entry = by_date[birth_date] = (f"{division_code}{y:04d}{m:02d}{d:02d}", rows[partial])
        return entry

    lookup = by_date.get
    try:
        return [
            prefix + row[sequence]
            for birth_date, sequence in zip(birth_dates, sequences, strict=True)
            for prefix, row in (lookup(birth_date) or add_date(birth_date),)
        ]
    except KeyError:
        raise ValueError("sequence must be an integer between 0 and 999") from None


# --------------------------------------------------------------------------- social credit code

#: The 31-character alphabet of GB 32100-2015 (no I, O, S, V, Z).
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES: dict[str, int] = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS: tuple[int, ...] = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


class UsccError(ValueError):
    """A unified social credit code is invalid."""

    field: str
    reason: str

    def __init__(self, reason: str, *, field: str = "uscc") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _check_uscc_body(first17: str) -> None:
    """Raise UsccError unless first17 is a well-formed 17-character code body."""
    if not all(c in _USCC_VALUES for c in first17):
        raise UsccError("contains a character outside the permitted alphabet")
    if not _DIGITS.issuperset(first17[2:8]):
        raise UsccError("division code (characters 3-8) must be digits")


def uscc_check_character(first17: str) -> str:
    """Return the GB 32100 check character for the first 17 characters of a code."""
    if len(first17) != 17:
        raise UsccError(f"code body must be 17 characters, got {len(first17)}")
    _check_uscc_body(first17)
    total = sum(_USCC_VALUES[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def validate_uscc(value: str) -> str:
    """Validate a unified social credit code and return it upper-cased."""
    if not isinstance(value, str):
        raise UsccError("must be a string")
    if len(value) != 18:
        raise UsccError(f"must be 18 characters, got {len(value)}")
    value = value.upper()
    _check_uscc_body(value)
    if value[17] not in _USCC_VALUES:
        raise UsccError("contains a character outside the permitted alphabet")
    if uscc_check_character(value[:17]) != value[17]:
        raise UsccError("check character does not match")
    return value


def make_uscc(first17: str) -> str:
    """Append the GB 32100 check character to a 17-character code body."""
    body = first17.upper()
    return body + uscc_check_character(body)
