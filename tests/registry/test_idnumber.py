"""Tests for resident identity numbers (GB 11643) and unified social credit codes (GB 32100)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citygrid.kit.models import city_today
from citygrid.registry.idnumber import (
    USCC_CHARSET,
    IdNumberError,
    ParsedIdNumber,
    UsccError,
    check_character,
    make_id_number,
    make_id_numbers,
    make_uscc,
    normalise_id_number,
    parse_id_number,
    uscc_check_character,
    validate_id_number,
    validate_uscc,
)

TODAY = city_today()  # the city's date (China Standard Time), as the checks use
PROVINCES = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37] + [
    41,
    42,
    43,
    44,
    45,
    46,
    50,
    51,
    52,
    53,
    54,
    61,
    62,
    63,
    64,
    65,
    71,
    81,
    82,
]
PUBLISHED_ID = "11010519491231002X"  # GB 11643-1999 worked example
PUBLISHED_USCC = "91350100M000100Y43"

# --------------------------------------------------------------------------- independent oracles
# Deliberately re-derived from the standards rather than copied from the implementation.


def mod11_2_check(first17: str) -> str:
    """ISO 7064 MOD 11-2: weights are 2^(18-i) mod 11; check value c solves sum + c = 1 mod 11."""
    total = sum(int(ch) * pow(2, 17 - i, 11) for i, ch in enumerate(first17))
    c = (12 - total % 11) % 11
    return "X" if c == 10 else str(c)


def gb32100_check(first17: str) -> str:
    """GB 32100: weights are 3^(i-1) mod 31; C18 = 31 - (sum mod 31), with 31 mapped to 0."""
    total = sum(USCC_CHARSET.index(ch) * pow(3, i, 31) for i, ch in enumerate(first17))
    c = 31 - total % 31
    return USCC_CHARSET[0 if c == 31 else c]


def assert_id_error(
    value: str,
    field: str,
    reason_part: str,
    *,
    birth_date: date | None = None,
    sex: str | None = None,
    today: date | None = None,
) -> IdNumberError:
    with pytest.raises(IdNumberError) as info:
        validate_id_number(value, birth_date=birth_date, sex=sex, today=today)
    err = info.value
    assert err.field == field
    assert reason_part in err.reason
    assert reason_part in str(err)
    if value:
        for fragment in (value, value[:17], value[:14], value[6:18]):
            assert fragment not in str(err)
            assert fragment not in repr(err)
    return err


# --------------------------------------------------------------------------- strategies

division_codes = st.builds(
    lambda p, rest: f"{p:02d}{rest:04d}",
    st.sampled_from(PROVINCES),
    st.integers(min_value=1, max_value=9999),
)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
sequences = st.integers(min_value=0, max_value=999)

uscc_char = st.sampled_from(USCC_CHARSET)
uscc_bodies = st.builds(
    lambda a, t, div, org: a + t + div + org,
    uscc_char,
    uscc_char,
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=USCC_CHARSET, min_size=9, max_size=9),
)


# --------------------------------------------------------------------------- identity numbers


def test_published_example_is_valid() -> None:
    parsed = parse_id_number(PUBLISHED_ID)
    assert parsed == ParsedIdNumber(
        division_code="110105",
        birth_date=date(1949, 12, 31),
        sequence="002",
        sex="F",
        check="X",
    )
    assert parsed.number == PUBLISHED_ID
    assert mod11_2_check(PUBLISHED_ID[:17]) == "X"
    assert check_character(PUBLISHED_ID[:17]) == "X"


def test_lowercase_x_is_normalised() -> None:
    parsed = parse_id_number(PUBLISHED_ID.lower())
    assert parsed.check == "X"
    assert parsed.number == PUBLISHED_ID


def test_hand_checkable_example() -> None:
    number = make_id_number("320102", date(1985, 7, 14), 123)
    assert number[:17] == "32010219850714123"
    # 3*7 + 2*9 + 0*10 + 1*5 + 0*8 + 2*4 + 1*2 + 9*1 + 8*6 + 5*3 + 0*7 + 7*9 + 1*10 + 4*5
    # + 1*8 + 2*4 + 3*2 = 21+18+0+5+0+8+2+9+48+15+0+63+10+20+8+8+6 = 241; 241 mod 11 = 10 -> "2"
    assert 241 % 11 == 10
    assert number[17] == "2" == "10X98765432"[10] == mod11_2_check(number[:17])
    parsed = validate_id_number(number, birth_date=date(1985, 7, 14), sex="M")
    assert (parsed.division_code, parsed.sequence, parsed.sex) == ("320102", "123", "M")


def test_check_character_matches_oracle_for_every_remainder() -> None:
    seen = set()
    for n in range(200):
        first17 = f"11010119900101{n:03d}"
        assert check_character(first17) == mod11_2_check(first17)
        seen.add(check_character(first17))
    assert seen == set("0123456789X")


@pytest.mark.parametrize("bad", ["", "1234", "1101051949123100", "x" * 17 + "1", "1" * 17 + "Y1"])
def test_check_character_rejects_non_digit_or_wrong_length(bad: str) -> None:
    with pytest.raises(ValueError):
        check_character(bad)


@settings(max_examples=300)
@given(division_codes, birth_dates, sequences)
def test_generated_numbers_pass_and_round_trip(division: str, born: date, seq: int) -> None:
    number = make_id_number(division, born, seq)
    assert len(number) == 18
    assert number[17] == mod11_2_check(number[:17])
    sex = "M" if seq % 2 else "F"
    parsed = validate_id_number(number, birth_date=born, sex=sex, today=TODAY)
    assert parsed.division_code == division
    assert parsed.birth_date == born
    assert parsed.sequence == f"{seq:03d}"
    assert parsed.sex == sex
    assert parsed.number == number


def test_mod11_2_detects_every_single_substitution_algebraically() -> None:
    """Changing digit a to b at position i shifts the sum by w_i*(b-a); 11 is prime and
    0 < |b-a| < 11, 0 < w_i < 11, so the shift is never 0 mod 11 and the check value moves.
    A change of the check character itself is trivially detected."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    assert weights == [pow(2, 17 - i, 11) for i in range(17)]
    for w, a, b in itertools.product(weights, range(10), range(10)):
        if a != b:
            assert (w * (b - a)) % 11 != 0


def _id_alphabet(position: int) -> str:
    return "0123456789X" if position == 17 else "0123456789"


@settings(max_examples=60)
@given(division_codes, birth_dates, sequences)
def test_every_single_substitution_fails(division: str, born: date, seq: int) -> None:
    number = make_id_number(division, born, seq)
    for pos in range(18):
        for ch in _id_alphabet(pos):
            if ch == number[pos]:
                continue
            mutated = number[:pos] + ch + number[pos + 1 :]
            # Independent of the implementation: the stored check no longer matches.
            assert mutated[17] != mod11_2_check(mutated[:17])
            with pytest.raises(IdNumberError) as info:
                parse_id_number(mutated, today=TODAY)
            assert info.value.field == "id_number"
            assert mutated not in str(info.value)
            if pos == 17:
                assert info.value.reason == "check character does not match"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (PUBLISHED_ID[:17], "must be 18 characters, got 17"),
        (PUBLISHED_ID + "1", "must be 18 characters, got 19"),
        ("", "must be 18 characters, got 0"),
        ("1101051949123100" + "A2", "first 17 characters must be digits"),
        ("11010519491231002Y", "last character must be a digit or 'X'"),
        ("110105 9491231002X", "first 17 characters must be digits"),
        ("\uff11\uff110105194912310020", "first 17 characters must be digits"),  # full-width
    ],
)
def test_shape_errors(value: str, reason: str) -> None:
    err = assert_id_error(value, "id_number", reason)
    assert err.reason == reason


@pytest.mark.parametrize("prefix", ["00", "10", "16", "20", "24", "30", "38", "47", "55", "66"])
def test_bad_province(prefix: str) -> None:
    first17 = prefix + PUBLISHED_ID[2:17]
    value = first17 + mod11_2_check(first17)
    assert_id_error(value, "id_number", "province")


def test_province_level_division_rejected() -> None:
    first17 = "110000" + PUBLISHED_ID[6:17]
    assert_id_error(first17 + mod11_2_check(first17), "id_number", "county-level")


@pytest.mark.parametrize("ymd", ["19490230", "19000229", "19491301", "19490000", "19490132"])
def test_impossible_date(ymd: str) -> None:
    first17 = "110105" + ymd + "002"
    value = first17 + mod11_2_check(first17)
    assert_id_error(value, "id_number", "not a real calendar date")


def test_date_before_1900() -> None:
    first17 = "110105" + "18991231" + "002"
    assert_id_error(first17 + mod11_2_check(first17), "id_number", "before 1900-01-01")


def test_future_date() -> None:
    tomorrow = TODAY + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}002"
    value = first17 + mod11_2_check(first17)
    assert_id_error(value, "id_number", "in the future", today=TODAY)
    # the same number is fine once that day has come
    assert validate_id_number(value, today=tomorrow).birth_date == tomorrow


def test_bad_check_character() -> None:
    value = PUBLISHED_ID[:17] + "1"
    err = assert_id_error(value, "id_number", "check character does not match")
    assert err.reason == "check character does not match"


def test_birth_date_disagrees() -> None:
    err = assert_id_error(PUBLISHED_ID, "birth_date", "birth date", birth_date=date(1949, 12, 30))
    assert err.reason == "birth date disagrees with the ID number"


def test_sex_disagrees() -> None:
    err = assert_id_error(PUBLISHED_ID, "sex", "sex", sex="M")
    assert err.reason == "sex disagrees with the ID number's sequence parity"
    assert validate_id_number(PUBLISHED_ID, sex="F", birth_date=date(1949, 12, 31)).sex == "F"


def test_invalid_sex_value() -> None:
    assert_id_error(PUBLISHED_ID, "sex", "'M' or 'F'", sex="female")


def test_id_number_is_not_in_traceback_chain() -> None:
    value = "110105" + "19490230" + "002"
    value += mod11_2_check(value)
    with pytest.raises(IdNumberError) as info:
        parse_id_number(value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert all(value not in str(a) for a in info.value.args)


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_id_number("bad")


@pytest.mark.parametrize(
    ("division", "born", "seq"),
    [
        ("110105", date(1949, 12, 31), -1),
        ("110105", date(1949, 12, 31), 1000),
        ("110000", date(1949, 12, 31), 1),
        ("990105", date(1949, 12, 31), 1),
        ("11010", date(1949, 12, 31), 1),
        ("110105", date(1899, 12, 31), 1),
    ],
)
def test_make_id_number_rejects_bad_inputs(division: str, born: date, seq: int) -> None:
    with pytest.raises(ValueError):
        make_id_number(division, born, seq)
    with pytest.raises(ValueError):
        make_id_numbers(division, [born], [seq])


@settings(max_examples=50)
@given(
    division_codes,
    st.lists(st.tuples(birth_dates, sequences), min_size=0, max_size=200),
)
def test_make_id_numbers_agrees_with_make_id_number(
    division: str, pairs: list[tuple[date, int]]
) -> None:
    born = [b for b, _ in pairs]
    seqs = [s for _, s in pairs]
    assert make_id_numbers(division, born, seqs) == [
        make_id_number(division, b, s) for b, s in pairs
    ]
    # accepts one-shot iterators too
    assert make_id_numbers(division, iter(born), iter(seqs)) == make_id_numbers(
        division, born, seqs
    )


def test_make_id_numbers_length_mismatch() -> None:
    with pytest.raises(ValueError):
        make_id_numbers("110105", [date(2000, 1, 1)] * 2, [1])


# --------------------------------------------------------------------------- social credit code


def test_published_uscc_is_valid() -> None:
    assert gb32100_check(PUBLISHED_USCC[:17]) == PUBLISHED_USCC[17]
    assert uscc_check_character(PUBLISHED_USCC[:17]) == "3"
    assert validate_uscc(PUBLISHED_USCC) == PUBLISHED_USCC
    assert validate_uscc(PUBLISHED_USCC.lower()) == PUBLISHED_USCC


def test_uscc_weights_are_powers_of_three() -> None:
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    assert weights == [pow(3, i, 31) for i in range(17)]
    # 31 is prime and no weight is 0 mod 31: every single substitution moves the sum.
    for w, d in itertools.product(weights, range(1, 31)):
        assert (w * d) % 31 != 0


@settings(max_examples=100)
@given(uscc_bodies)
def test_made_uscc_validates(body: str) -> None:
    code = make_uscc(body)
    assert code[:17] == body
    assert code[17] == gb32100_check(body)
    assert validate_uscc(code) == code


@settings(max_examples=30)
@given(uscc_bodies)
def test_every_single_uscc_substitution_fails(body: str) -> None:
    code = make_uscc(body)
    for pos, ch in itertools.product(range(18), USCC_CHARSET):
        if ch == code[pos]:
            continue
        mutated = code[:pos] + ch + code[pos + 1 :]
        with pytest.raises(UsccError) as info:
            validate_uscc(mutated)
        assert info.value.field == "uscc"
        if 2 <= pos <= 7 and not ch.isdigit():
            assert "division code" in info.value.reason
        else:
            assert info.value.reason == "check character does not match"


@pytest.mark.parametrize("bad_char", ["I", "O", "S", "V", "Z", "-", " ", "é"])
@pytest.mark.parametrize("pos", [0, 1, 9, 17])
def test_uscc_bad_charset(bad_char: str, pos: int) -> None:
    value = PUBLISHED_USCC[:pos] + bad_char + PUBLISHED_USCC[pos + 1 :]
    with pytest.raises(UsccError) as info:
        validate_uscc(value)
    assert info.value.field == "uscc"
    assert "alphabet" in info.value.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (PUBLISHED_USCC[:17], "must be 18 characters, got 17"),
        (PUBLISHED_USCC + "0", "must be 18 characters, got 19"),
        ("91A50100M000100Y43", "division code (characters 3-8) must be digits"),
        ("91350100M000100Y44", "check character does not match"),
    ],
)
def test_uscc_errors(value: str, reason: str) -> None:
    with pytest.raises(UsccError) as info:
        validate_uscc(value)
    assert info.value.field == "uscc"
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", ["", "91350100M000100Y", "91350100M000100YI", "91A50100M000100Y4"])
def test_make_uscc_rejects_bad_bodies(bad: str) -> None:
    with pytest.raises(UsccError):
        make_uscc(bad)


# --------------------------------------------------------------------------- the fast path


def _same_verdict(value: str) -> None:
    """``normalise_id_number`` (the bulk import's fast path) accepts exactly what
    ``parse_id_number`` accepts, normalised alike, and refuses the rest with its reason."""
    try:
        expected = parse_id_number(value).number
    except IdNumberError as slow:
        with pytest.raises(IdNumberError) as fast:
            normalise_id_number(value)
        assert (fast.value.field, fast.value.reason) == (slow.field, slow.reason)
    else:
        assert normalise_id_number(value) == expected


@settings(max_examples=60)
@given(division_codes, birth_dates, sequences)
def test_fast_path_agrees_on_valid_numbers_and_every_substitution(
    division: str, born: date, seq: int
) -> None:
    number = make_id_number(division, born, seq)
    _same_verdict(number)
    _same_verdict(number.lower())
    for pos in range(18):
        for ch in "0123456789Xx":
            _same_verdict(number[:pos] + ch + number[pos + 1 :])


@settings(max_examples=300)
@given(st.text(alphabet="0123456789Xx \uff11\u00b2+_-", min_size=16, max_size=19))
def test_fast_path_agrees_on_arbitrary_text(value: str) -> None:
    _same_verdict(value)


@pytest.mark.parametrize(
    "value",
    [
        PUBLISHED_ID,
        PUBLISHED_ID.lower(),
        PUBLISHED_ID[:17] + "1",
        "1101051949123100" + "A2",
        "\uff11\uff110105194912310020",
        "+1010519491231002X",
        "1_010519491231002X",
        "110000" + PUBLISHED_ID[6:],
        "16" + PUBLISHED_ID[2:],
    ],
)
def test_fast_path_agrees_on_known_cases(value: str) -> None:
    _same_verdict(value)


@pytest.mark.parametrize("ymd", ["19490230", "19000229", "18991231", "19491301"])
def test_fast_path_refuses_impossible_and_early_dates(ymd: str) -> None:
    first17 = "110105" + ymd + "002"
    _same_verdict(first17 + mod11_2_check(first17))
    with pytest.raises(IdNumberError):
        normalise_id_number(first17 + mod11_2_check(first17))


def test_fast_path_refuses_a_birth_date_after_today() -> None:
    tomorrow = TODAY + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}002"
    with pytest.raises(IdNumberError) as info:
        normalise_id_number(first17 + mod11_2_check(first17))
    assert info.value.reason == "birth date is in the future"
    today = f"110105{TODAY:%Y%m%d}002"
    assert normalise_id_number(today + mod11_2_check(today)) == today + mod11_2_check(today)
