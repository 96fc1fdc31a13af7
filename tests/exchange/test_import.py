"""A department imports a whole file of records it owns: CSV (UTF-8 with or without a byte
order mark, GB18030) or XLSX, each rejected row reported with its line, field and reason,
the rest applied (valid_rows) or nothing (all_or_nothing); the same rules as the API."""

from __future__ import annotations

import codecs
import csv
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.exchange import importing, outbox, service
from citygrid.exchange.importing import ImportRequest, run_import
from citygrid.exchange.models import ImportJob, ImportPhase, OutboxEntry, Publication
from citygrid.exchange.schemas import PublishMode
from citygrid.exchange.tabular import ResumePoint, detect_encoding
from citygrid.kit.errors import CitygridError, Forbidden, ValidationFailed
from citygrid.registry.idnumber import make_id_number
from citygrid.registry.models import Person
from tests.exchange.story import money, pension, resident, snapshot

HEADER = ["id_number", "amount", "status", "since"]
STRANGER = make_id_number("440104", date(1950, 5, 5), 555)


def _write_csv(path: Path, rows: list[list[Any]], *, encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    return path


def _request(path: Path, tmp_path: Path, **overrides: Any) -> ImportRequest:
    values: dict[str, Any] = {
        "dataset": "pensions",
        "path": path,
        "department": "social-security",
        "errors_path": tmp_path / "errors.csv",
        "batch_size": 2,
    }
    return ImportRequest(**(values | overrides))


@pytest.fixture(params=[False, True], ids=["in-process", "read-ahead"])
def read_ahead(request: pytest.FixtureRequest) -> bool:
    """Both ways of reading a file: in the importing process, or in a reader process that
    validates the next batches while one is written (what a large file gets)."""
    return bool(request.param)


def _report(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "errors.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _people(city: Session, count: int) -> list[Person]:
    people = [resident(city) for _ in range(count)]
    city.flush()
    return people


def _count(session: Session, model: type) -> int:
    session.expire_all()
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _clean_rows(people: list[Person]) -> list[list[Any]]:
    """An active pension for each person, every row valid."""
    return [[person.id_number, "3100.00", "active", "2021-03-01"] for person in people]


def _mixed_rows(people: list[Person]) -> list[list[Any]]:
    return [
        [people[0].id_number, "3250.50", "active", "2020-01-01"],  # line 2, row 1
        [STRANGER, "3000.00", "active", "2020-01-01"],  # line 3: nobody by that number
        [people[1].id_number, "-5", "active", "2020-01-01"],  # line 4: negative
        [people[2].id_number, "2800.00", "paused", "2020-02-30"],  # line 5: two bad fields
        [people[3].id_number, "2100.00", "stopped", "2019-06-30"],  # line 6
    ]


def test_valid_rows_applies_the_good_rows_and_reports_each_bad_one(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path, read_ahead: bool
) -> None:
    people = _people(city, 4)
    source = _write_csv(tmp_path / "pensions.csv", _mixed_rows(people))

    result = run_import(
        sessions, _request(source, tmp_path, mode=PublishMode.VALID_ROWS, read_ahead=read_ahead)
    )

    assert (result.rows, result.created, result.rejected) == (5, 2, 3)
    assert result.phase is ImportPhase.DONE
    city.expire_all()
    held = pension(city, people[0])
    assert held is not None and held.amount == money("3250.50")
    stopped = pension(city, people[3])
    assert stopped is not None and str(stopped.status) == "stopped"
    assert pension(city, people[1]) is None and pension(city, people[2]) is None
    report = _report(tmp_path)
    assert [(r["line"], r["row"], r["field"]) for r in report] == [
        ("3", "2", "id_number"),
        ("4", "3", "amount"),
        ("5", "4", "status"),
        ("5", "4", "since"),
    ]
    assert all(r["reason"] for r in report)
    report_text = (tmp_path / "errors.csv").read_text(encoding="utf-8-sig")
    for secret in [STRANGER] + [person.id_number for person in people]:
        assert secret not in report_text
    # Batches of two rows: three publications, the outbox told of the two changed rows.
    assert _count(city, Publication) == 3
    assert _count(city, OutboxEntry) == 2


def test_all_or_nothing_checks_the_whole_file_and_writes_nothing(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path, read_ahead: bool
) -> None:
    people = _people(city, 4)
    source = _write_csv(tmp_path / "pensions.csv", _mixed_rows(people))
    before = snapshot(city)

    result = run_import(
        sessions, _request(source, tmp_path, mode=PublishMode.ALL_OR_NOTHING, read_ahead=read_ahead)
    )

    assert result.phase is ImportPhase.REJECTED
    assert not result.applied
    assert (result.rows, result.rejected, result.created) == (5, 3, 0)
    city.expire_all()
    assert snapshot(city) == before
    assert _count(city, Publication) == 0
    assert [(r["line"], r["field"]) for r in _report(tmp_path)] == [
        ("3", "id_number"),
        ("4", "amount"),
        ("5", "status"),
        ("5", "since"),
    ]


def test_all_or_nothing_applies_a_clean_file_after_checking_it(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    people = _people(city, 5)
    rows = [[p.id_number, f"{3000 + i}.00", "active", "2021-03-01"] for i, p in enumerate(people)]
    source = _write_csv(tmp_path / "pensions.csv", rows)

    result = run_import(sessions, _request(source, tmp_path, mode=PublishMode.ALL_OR_NOTHING))

    assert result.phase is ImportPhase.DONE
    assert (result.rows, result.created, result.rejected) == (5, 5, 0)
    city.expire_all()
    assert [pension(city, p).amount for p in people] == [  # type: ignore[union-attr]
        money(f"{3000 + i}.00") for i in range(5)
    ]
    assert _report(tmp_path) == []


def test_a_department_cannot_import_a_dataset_it_does_not_own(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    people = _people(city, 1)
    source = _write_csv(tmp_path / "pensions.csv", [[people[0].id_number, "1.00", "active", ""]])

    with pytest.raises(Forbidden):
        run_import(sessions, _request(source, tmp_path, department="civil-affairs"))

    assert _count(city, ImportJob) == 0
    assert pension(city, people[0]) is None


def test_the_same_file_again_is_recognised_and_not_applied_twice(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    people = _people(city, 3)
    rows = _clean_rows(people)
    source = _write_csv(tmp_path / "pensions.csv", rows)
    run_import(sessions, _request(source, tmp_path))

    again = run_import(sessions, _request(source, tmp_path))
    restarted = run_import(sessions, _request(source, tmp_path, restart=True))

    assert again.state == "finished" and again.created == 3
    assert (restarted.created, restarted.unchanged) == (0, 3)
    assert _count(city, OutboxEntry) == 3  # unchanged rows tell nobody


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_a_csv_with_a_byte_order_mark_or_in_gb18030_is_read(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path, encoding: str
) -> None:
    people = _people(city, 2)
    path = tmp_path / "pensions.csv"
    # A Chinese note after the data rows' fields makes the encodings differ in bytes.
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerow([people[0].id_number, "3100.00", "active", "2021-03-01"])
        writer.writerow([people[1].id_number, "3200.00", "状态", "2021-03-01"])

    result = run_import(sessions, _request(path, tmp_path))

    assert (result.created, result.rejected) == (1, 1)
    assert [(r["line"], r["field"]) for r in _report(tmp_path)] == [("3", "status")]


def test_encoding_detection() -> None:
    text = "id_number,备注\n"
    assert detect_encoding(codecs.BOM_UTF8 + text.encode()) == "utf-8-sig"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(text.encode("gb18030")) == "gb18030"
    # A sample cut inside a multi-byte character is still UTF-8.
    assert detect_encoding(text.encode("utf-8")[:-3]) == "utf-8"


def test_an_xlsx_sheet_is_imported_with_typed_cells(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path, read_ahead: bool
) -> None:
    people = _people(city, 3)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append([people[0].id_number, 3250.5, "active", datetime(2020, 1, 1)])
    sheet.append([people[1].id_number, 3100, "active", date(2021, 5, 1)])
    sheet.append([people[2].id_number, 3100.125, "active", "2021-05-01"])  # 3 decimals
    path = tmp_path / "pensions.xlsx"
    workbook.save(path)

    result = run_import(sessions, _request(path, tmp_path, read_ahead=read_ahead))

    assert (result.created, result.rejected) == (2, 1)
    city.expire_all()
    first = pension(city, people[0])
    assert first is not None and first.amount == money("3250.50")
    assert first.since == date(2020, 1, 1)
    assert [(r["line"], r["row"], r["field"]) for r in _report(tmp_path)] == [("4", "3", "amount")]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (["id_number", "amount", "status", "since", "salary"], "column 5"),
        (["id_number", "status", "since"], "amount"),
    ],
)
def test_a_header_that_does_not_fit_the_dataset_is_refused_before_anything(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path, header: list[str], field: str
) -> None:
    path = tmp_path / "pensions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, ["x"] * len(header)])

    with pytest.raises(ValidationFailed) as refused:
        run_import(sessions, _request(path, tmp_path))

    assert field in refused.value.message
    assert _count(city, ImportJob) == 0


def test_a_file_without_a_header_row_is_refused_without_quoting_its_first_row(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    [person] = _people(city, 1)
    path = tmp_path / "pensions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow([person.id_number, "3100.00", "active", "2021-03-01"])

    with pytest.raises(ValidationFailed) as refused:
        run_import(sessions, _request(path, tmp_path))

    assert "column 1" in refused.value.message
    assert person.id_number not in refused.value.message
    assert _count(city, ImportJob) == 0


def test_a_line_that_is_not_text_in_the_encoding_is_a_rejected_row(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path, read_ahead: bool
) -> None:
    people = _people(city, 2)
    path = tmp_path / "pensions.csv"
    good = f"{people[0].id_number},3100.00,active,2021-03-01\n".encode()
    bad = f"{people[1].id_number},3100.00,active,2021-03-01,".encode() + b"\xff\xfe\n"
    path.write_bytes(",".join(HEADER).encode() + b"\n" + good + bad)

    result = run_import(sessions, _request(path, tmp_path, encoding="utf-8", read_ahead=read_ahead))

    assert (result.created, result.rejected) == (1, 1)
    assert [(r["line"], r["field"]) for r in _report(tmp_path)] == [("3", "record")]


class _Crash(Exception):
    pass


class _CrashAfter:
    """A progress bar that stops the import (like a kill) after some batches."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def start(self, description: str, *, total: int | None, unit: str, done: int) -> None:
        return None

    def update(self, done: int, *, rows: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise _Crash


@pytest.mark.parametrize("mode", [PublishMode.VALID_ROWS, PublishMode.ALL_OR_NOTHING])
def test_an_interrupted_import_resumes_after_its_last_committed_batch(
    city: Session,
    sessions: outbox.SessionFactory,
    tmp_path: Path,
    mode: PublishMode,
    read_ahead: bool,
) -> None:
    people = _people(city, 9)
    rows = _clean_rows(people)
    if mode is PublishMode.VALID_ROWS:
        rows[4][1] = "-1"  # line 6, row 5: in the third batch
    source = _write_csv(tmp_path / "pensions.csv", rows)
    request = _request(source, tmp_path, mode=mode, read_ahead=read_ahead)

    with pytest.raises(_Crash):
        run_import(sessions, request, progress=_CrashAfter(3))
    resumed = run_import(sessions, request)

    assert resumed.state == "resumed"
    assert resumed.phase is ImportPhase.DONE
    expected = 8 if mode is PublishMode.VALID_ROWS else 9
    assert (resumed.rows, resumed.created) == (9, expected)
    assert _count(city, OutboxEntry) == expected
    publications = city.execute(select(func.sum(Publication.received))).scalar_one()
    assert publications == 9
    report = _report(tmp_path)
    if mode is PublishMode.VALID_ROWS:
        assert [(r["line"], r["row"]) for r in report] == [("6", "5")]
    else:
        assert report == []


def test_a_second_process_on_the_same_import_is_stopped(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    from citygrid.exchange import service
    from citygrid.kit.actor import Actor
    from citygrid.kit.errors import Conflict

    people = _people(city, 1)
    source = _write_csv(tmp_path / "pensions.csv", [[people[0].id_number, "1.00", "active", ""]])
    actor = Actor(name="import", department="social-security")
    job, state = service.start_import(
        city,
        actor,
        dataset="pensions",
        fingerprint="f" * 64,
        mode=PublishMode.VALID_ROWS,
        file_name=source.name,
        file_size=1,
    )
    service.checkpoint_import(city, job_id=job.id, values={"rows_done": 40})

    with pytest.raises(Conflict):
        service.claim_import_step(city, job_id=job.id, rows_done=0, phase=ImportPhase.APPLYING)
    service.claim_import_step(city, job_id=job.id, rows_done=40, phase=ImportPhase.APPLYING)
    assert state == "new"


def test_a_resumed_import_whose_earlier_report_is_gone_says_so(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    people = _people(city, 6)
    rows = [
        [p.id_number, "-1" if i == 0 else "3100.00", "active", "2021"] for i, p in enumerate(people)
    ]
    source = _write_csv(tmp_path / "pensions.csv", rows)
    request = _request(source, tmp_path)
    with pytest.raises(_Crash):
        run_import(sessions, request, progress=_CrashAfter(1))
    (tmp_path / "errors.csv").unlink()

    resumed = run_import(sessions, request)

    assert resumed.report_incomplete
    assert resumed.rejected == 6  # the first row's amount, and every "since" of 2021
    assert [r["row"] for r in _report(tmp_path)] == ["3", "4", "5", "6"]


def test_all_or_nothing_stops_clearly_when_the_data_changes_between_check_and_apply(
    city: Session, sessions: outbox.SessionFactory, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from citygrid.kit.errors import Conflict

    people = _people(city, 4)
    rows = _clean_rows(people)
    source = _write_csv(tmp_path / "pensions.csv", rows)

    class _RenumberBeforeApplying:
        def start(self, description: str, *, total: int | None, unit: str, done: int) -> None:
            if description == "Importing":  # the second pass: the person is no longer there
                with sessions() as session:
                    session.execute(
                        update(Person).where(Person.id == people[3].id).values(id_number=STRANGER)
                    )
                    session.commit()

        def update(self, done: int, *, rows: int) -> None:
            return None

    request = _request(source, tmp_path, mode=PublishMode.ALL_OR_NOTHING)
    with pytest.raises(Conflict) as stopped:
        run_import(sessions, request, progress=_RenumberBeforeApplying())

    assert "line 4" in stopped.value.message and "2 rows" in stopped.value.message
    city.expire_all()
    assert [pension(city, p) is not None for p in people] == [True, True, False, False]


def test_a_failure_in_the_reader_process_stops_the_import_where_it_was(
    city: Session,
    sessions: outbox.SessionFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _write_csv(tmp_path / "pensions.csv", _clean_rows(_people(city, 6)))
    request = _request(source, tmp_path, read_ahead=True)
    parse_rows = service.parse_rows
    calls = iter(range(100))

    def failing_on_the_third_batch(dataset: str, records: Any) -> service.ParsedRows:
        if next(calls) == 2:
            raise OSError("the disk went away")
        return parse_rows(dataset, records)

    # The reader is forked from this process: it runs the patched function.
    monkeypatch.setattr(service, "parse_rows", failing_on_the_third_batch)
    with pytest.raises(OSError, match="the disk went away"):
        run_import(sessions, request)
    monkeypatch.setattr(service, "parse_rows", parse_rows)

    city.expire_all()
    job = city.execute(select(ImportJob)).scalar_one()
    assert job.rows_done == 4  # the two batches before it, committed
    resumed = run_import(sessions, request)
    assert (resumed.state, resumed.rows, resumed.created) == ("resumed", 6, 6)


def test_a_reader_process_that_dies_is_an_error_not_a_hang(
    city: Session,
    sessions: outbox.SessionFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _write_csv(tmp_path / "pensions.csv", _clean_rows(_people(city, 4)))

    def killed(dataset: str, records: Any) -> service.ParsedRows:
        os._exit(9)  # as the kernel's out-of-memory killer would end it

    monkeypatch.setattr(service, "parse_rows", killed)
    with pytest.raises(CitygridError, match="reading the file stopped unexpectedly"):
        run_import(sessions, _request(source, tmp_path, read_ahead=True))
    city.expire_all()
    assert city.execute(select(ImportJob.rows_done)).scalar_one() == 0


ROWS_OF_EVERY_DATASET = {
    "subsistence_allowances": {"amount": "980.00", "status": "suspended", "since": "2020-01-31"},
    "pensions": {"amount": "3100.25", "status": "stopped", "since": "2019-12-01"},
    "marital_statuses": {"marital_status": "married"},
    "tenancies": {"unit_id": 7, "since": "2020-02-29", "until": "2021-02-28", "status": "ended"},
    "criminal_records": {"criminal_record": True, "since": "2001-09-09"},
}


@pytest.mark.parametrize("dataset", sorted(ROWS_OF_EVERY_DATASET))
def test_rows_read_ahead_reach_the_writer_exactly_as_validated(dataset: str) -> None:
    records = [
        {"id_number": STRANGER} | ROWS_OF_EVERY_DATASET[dataset],
        {"id_number": STRANGER, "since": "2020-13-01"},
    ]
    parsed = service.parse_rows(dataset, records)
    chunk = importing._Chunk(
        lines=[2, 3],
        unreadable=[],
        readable=[0, 1],
        parsed=parsed,
        resume=ResumePoint(line=3, byte_offset=99),
        position=99,
    )

    received = importing._unpack(importing._pack(chunk, dataset), dataset)

    validated = service.ROW_SHAPES[dataset].model_validate(records[0]).model_dump()
    assert received.parsed.indexes == parsed.indexes == [0]
    assert (
        received.parsed.columns
        == parsed.columns
        == {name: [value] for name, value in validated.items()}
    )
    assert [type(values[0]) for values in received.parsed.columns.values()] == [
        type(value) for value in validated.values()
    ]
    assert received.parsed.problems == parsed.problems
    assert (received.resume, received.lines) == (chunk.resume, chunk.lines)
