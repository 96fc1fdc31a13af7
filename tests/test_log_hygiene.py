"""No personal data reaches the logs (DESIGN.md, invariant 6).

Every log record of the run goes to one file (the ``log_file`` fixture of tests/conftest.py:
citygrid's loggers at DEBUG, uvicorn's, and any other library's warnings). This module runs
last (tests/conftest.py moves it there) and scans that file for:

- every name and ID number of a resident that any test wrote through the ORM (the registry
  service and the factories: a mapper event below collects them as they are inserted or
  changed), as written, JSON-escaped and URL-encoded;
- anything shaped like an ID number (18 characters) that is a valid GB 11643 number, whoever
  made it (bulk inserts, literals in tests).

With pytest-xdist each worker has its own file and scans only what it ran.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event

from citygrid.registry.idnumber import IdNumberError, parse_id_number
from citygrid.registry.models import Person

# Residents' names and ID numbers written during the run.
WRITTEN: set[str] = set()

ID_NUMBER_SHAPE = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


@event.listens_for(Person, "before_insert")
@event.listens_for(Person, "before_update")
def _remember(_mapper: Any, _connection: Any, person: Person) -> None:
    for value in (person.name, person.id_number):
        if value:
            WRITTEN.add(value)


def forms_of(value: str) -> set[str]:
    """How a value may appear in a log line: as is, JSON-escaped, URL-encoded."""
    return {value, json.dumps(value)[1:-1], quote(value), quote(value, safe="").lower()}


def personal_data_in(text: str, known: set[str]) -> list[tuple[int, str]]:
    """(line number, what) of each known value or valid ID number found in ``text``."""
    found: list[tuple[int, str]] = []
    needles = {form: value for value in known for form in forms_of(value)}
    for number, line in enumerate(text.splitlines(), start=1):
        for form, value in needles.items():
            if form in line:
                found.append((number, f"known value {value[:1]}… ({len(value)} characters)"))
        for match in ID_NUMBER_SHAPE.finditer(line):
            try:
                parse_id_number(match.group())
            except IdNumberError:
                continue
            found.append((number, f"valid ID number {match.group()[:6]}…"))
    return found


def test_the_scan_finds_names_and_id_numbers(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "INFO citygrid.web list of grid 440104001001002 (request 9f3c2a)",
            "WARNING citygrid.x person 11010519491231002X not found",  # valid check character
            "WARNING citygrid.x person 110105194912310021 not found",  # wrong check character
            'DEBUG citygrid.y body {"name": "\\u738b\\u5c0f\\u660e"}',
            "DEBUG citygrid.z GET /search?name=%E7%8E%8B%E5%B0%8F%E6%98%8E",
            "INFO citygrid.web request 0123456789012345678901234567890abcdef",
        ]
    )

    found = personal_data_in(text, {"王小明"})

    assert [line for line, _what in found] == [2, 4, 5]


def test_no_personal_data_reached_the_log(log_file: Path) -> None:
    text = log_file.read_text(encoding="utf-8")

    found = personal_data_in(text, WRITTEN)

    assert not found, (
        f"personal data in the log {log_file} (line, what): {found[:20]}; "
        f"{len(WRITTEN)} names and ID numbers were looked for"
    )
