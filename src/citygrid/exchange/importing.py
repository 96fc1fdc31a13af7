"""The bulk import of a department's file (``citygrid import``): streamed, checkpointed,
resumable, with an error report.

Each batch is one transaction holding the batch's rows, their outbox entries, the batch's
publication record and the job's new resume point, so a process killed at any moment (even
SIGKILL) and run again continues right after the last committed batch: no row is applied
twice and none is lost. The error report is written and flushed to disk before the commit
and its length is part of the checkpoint; a resumed run cuts it back to that length, so it
lists every rejected row exactly once too.

``all_or_nothing`` reads the file twice: first every row is checked (nothing written, the
checkpoint still advancing so a killed check resumes), and only when none is rejected are the
batches applied. ``valid_rows`` applies the valid rows of each batch as it goes.

The rows go through the same service function as the API (``service.publish_rows``): the
same ownership check, per-row validation, bulk upsert, outbox entries and publication record.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy.orm import Session

from citygrid.exchange import service
from citygrid.exchange.models import ImportPhase
from citygrid.exchange.schemas import MAX_BATCH, ROW_MODELS, PublishMode, RowProblem
from citygrid.exchange.tabular import ResumePoint, SourceRow, TableSource, fingerprint, open_source
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow

DEFAULT_BATCH = 5_000
REPORT_HEADER = ("line", "row", "field", "reason")

SessionFactory = Callable[[], Session]


class ImportProgress(Protocol):
    """Something that shows how far an import has got (the CLI's progress bar)."""

    def start(self, description: str, *, total: int | None, unit: str, done: int) -> None:
        """A pass over the file begins (``done`` already read when resuming)."""

    def update(self, done: int, *, rows: int) -> None:
        """``done`` units read, ``rows`` data rows processed in this pass."""


class _Quiet:
    def start(self, description: str, *, total: int | None, unit: str, done: int) -> None:
        return None

    def update(self, done: int, *, rows: int) -> None:
        return None


@dataclass(frozen=True)
class ImportRequest:
    """What to import, from where, and how."""

    dataset: str
    path: Path
    department: str
    mode: PublishMode = PublishMode.VALID_ROWS
    errors_path: Path | None = None
    batch_size: int = DEFAULT_BATCH
    encoding: str | None = None
    restart: bool = False
    publisher: str = "citygrid-import"

    @property
    def report_path(self) -> Path:
        """Where the error report goes (beside the file unless given)."""
        return self.errors_path or self.path.with_name(self.path.name + ".errors.csv")


@dataclass
class ImportResult:
    """What an import did (over all its runs, when it was resumed)."""

    job_id: int
    state: str  # new / resumed / finished (imported before: nothing done now)
    phase: ImportPhase
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    report_path: Path
    resumed_at_line: int = 0
    rows_this_run: int = 0
    # Resumed, but the earlier run's report was not found at ``report_path``: the rows it
    # rejected before the resume point are counted in ``rejected`` but not listed there.
    report_incomplete: bool = False

    @property
    def applied(self) -> bool:
        """Whether the rows were written (False: an all_or_nothing file with rejections)."""
        return self.phase is ImportPhase.DONE


def _actor(request: ImportRequest) -> Actor:
    return Actor(
        name=request.publisher, role="department", kind="system", department=request.department
    )


def check_columns(dataset: str, columns: list[str]) -> None:
    """The header must name the dataset's fields: each column one of them (``id_number``
    and the catalogue's fields), every required one present."""
    shape = ROW_MODELS.get(dataset)
    if shape is None:
        return  # the service refuses the unknown dataset
    fields = shape.model_fields
    # A header cell is named by its position, never quoted: a file without a header row
    # would make its first row (a name, an ID number) the "columns".
    unknown = [position for position, column in enumerate(columns, 1) if column not in fields]
    if unknown:
        raise ValidationFailed.one(
            "file",
            _(
                "column %(position)d of the first row is not a field of the dataset "
                "(fields: %(fields)s)"
            )
            % {"position": unknown[0], "fields": ", ".join(fields)},
        )
    missing = [name for name, info in fields.items() if info.is_required() and name not in columns]
    if missing:
        raise ValidationFailed.one(
            "file", _("the required column %(column)s is missing") % {"column": missing[0]}
        )


class _Report:
    """The error report (CSV, UTF-8 with a byte order mark for spreadsheet programs): one
    line per rejected field, with the row's line in the file, its data row number, the field
    and the reason, never the value."""

    def __init__(self, path: Path, *, keep_bytes: int) -> None:
        self.path = path
        self.lost_earlier = False
        if keep_bytes and path.exists() and path.stat().st_size >= keep_bytes:
            self._handle: IO[bytes] = path.open("r+b")
            self._handle.truncate(keep_bytes)
            self._handle.seek(keep_bytes)
        else:
            self.lost_earlier = keep_bytes > 0
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("wb")
            self._handle.write(b"\xef\xbb\xbf")
            self._write_rows([REPORT_HEADER])
            self.sync()

    def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        self._handle.write(buffer.getvalue().encode("utf-8"))

    def add(self, problems: list[tuple[int, int, str, str]]) -> None:
        """Append rejected fields: (line, row, field, reason)."""
        if problems:
            self._write_rows(list(problems))

    def sync(self) -> int:
        """Flush to disk; the report's length (part of the checkpoint)."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._handle.tell()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def _batches(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    while batch := list(islice(rows, size)):
        yield batch


def _problems(
    batch: list[SourceRow], first_row: int, problems: list[RowProblem], readable: list[int]
) -> list[tuple[int, int, str, str]]:
    """Rejected fields as report lines; ``readable[i]`` is the batch position of the i-th
    row handed to the service."""
    lines = [
        (
            batch[readable[problem.index]].line,
            first_row + readable[problem.index],
            problem.field,
            problem.reason,
        )
        for problem in problems
    ]
    for position, row in enumerate(batch):
        if row.unreadable is not None:
            lines.append((row.line, first_row + position, "record", row.unreadable))
    lines.sort(key=lambda line: line[1])
    return lines


def run_import(
    sessions: SessionFactory,
    request: ImportRequest,
    *,
    progress: ImportProgress | None = None,
) -> ImportResult:
    """Import the file as ``request`` says; raises a CitygridError (nothing of the failing
    step written) for a file, header or department that cannot be imported."""
    if not 1 <= request.batch_size <= MAX_BATCH:
        raise ValidationFailed.one(
            "batch_size", _("must be between 1 and %(max)d") % {"max": MAX_BATCH}
        )
    progress = progress or _Quiet()
    actor = _actor(request)
    source = open_source(request.path, encoding=request.encoding)
    try:
        check_columns(request.dataset, source.columns)
        with sessions() as session:
            job, state = service.start_import(
                session,
                actor,
                dataset=request.dataset,
                fingerprint=fingerprint(request.path),
                mode=request.mode,
                file_name=request.path.name,
                file_size=request.path.stat().st_size,
                restart=request.restart,
            )
            session.commit()
            job_id = job.id
        if state == "finished":
            return _result(sessions, job_id, state, request)
        with sessions() as session:
            job = service.import_job(session, job_id=job_id)
            report = _Report(request.report_path, keep_bytes=job.report_bytes)
        try:
            result = _run_phases(sessions, request, actor, source, job_id, state, report, progress)
        finally:
            report.close()
        result.report_incomplete = report.lost_earlier
        return result
    finally:
        source.close()


def _run_phases(
    sessions: SessionFactory,
    request: ImportRequest,
    actor: Actor,
    source: TableSource,
    job_id: int,
    state: str,
    report: _Report,
    progress: ImportProgress,
) -> ImportResult:
    with sessions() as session:
        job = service.import_job(session, job_id=job_id)
        resumed_at_line = job.line if state == "resumed" else 0
        phase = job.phase
    rows_this_run = 0
    if phase is ImportPhase.VALIDATING:
        rows_this_run += _pass(sessions, request, actor, source, job_id, report, progress)
        with sessions() as session:
            job = service.import_job(session, job_id=job_id)
            rejected = job.rejected
            service.checkpoint_import(
                session,
                job_id=job_id,
                values=(
                    {"phase": ImportPhase.REJECTED, "finished_at": utcnow()}
                    if rejected
                    else {
                        "phase": ImportPhase.APPLYING,
                        "rows_done": 0,
                        "line": 0,
                        "byte_offset": 0,
                    }
                ),
            )
            session.commit()
        phase = ImportPhase.REJECTED if rejected else ImportPhase.APPLYING
    if phase is ImportPhase.APPLYING:
        rows_this_run += _pass(sessions, request, actor, source, job_id, report, progress)
        with sessions() as session:
            service.checkpoint_import(
                session, job_id=job_id, values={"phase": ImportPhase.DONE, "finished_at": utcnow()}
            )
            session.commit()
    result = _result(sessions, job_id, state, request)
    result.resumed_at_line = resumed_at_line
    result.rows_this_run = rows_this_run
    return result


def _pass(
    sessions: SessionFactory,
    request: ImportRequest,
    actor: Actor,
    source: TableSource,
    job_id: int,
    report: _Report,
    progress: ImportProgress,
) -> int:
    """One pass over the file from the job's checkpoint: checking (validating phase) or
    applying; each batch commits with the checkpoint after it. Returns rows processed."""
    with sessions() as session:
        job = service.import_job(session, job_id=job_id)
        phase = job.phase
        rows_done = job.rows_done
        start = ResumePoint(line=job.line, byte_offset=job.byte_offset)
        counters = {
            "created": job.created,
            "updated": job.updated,
            "unchanged": job.unchanged,
            "rejected": job.rejected,
        }
    checking = phase is ImportPhase.VALIDATING
    mode = request.mode
    progress.start(
        _("Checking") if checking else _("Importing"),
        total=source.total,
        unit=source.unit,
        done=start.byte_offset if source.unit == "bytes" else max(start.line - 1, 0),
    )
    processed = 0
    for batch in _batches(source.rows(start), request.batch_size):
        point = source.resume_point
        readable = [index for index, row in enumerate(batch) if row.unreadable is None]
        records = [batch[index].values for index in readable]
        first_row = rows_done + 1
        with sessions() as session:
            service.claim_import_step(session, job_id=job_id, rows_done=rows_done, phase=phase)
            if checking:
                problems = service.check_rows(
                    session, actor, dataset=request.dataset, records=records
                )
            else:
                try:
                    outcome = service.publish_rows(
                        session, actor, dataset=request.dataset, mode=mode, records=records
                    )
                except ValidationFailed:
                    # all_or_nothing: the file passed its check, but the database changed since.
                    raise Conflict(
                        _(
                            "Rows from line %(line)d were rejected while being applied: the "
                            "data changed after the file was checked. The %(rows)d rows before "
                            "them were applied; run the import again to continue, or with "
                            "--restart."
                        )
                        % {"line": batch[0].line, "rows": rows_done}
                    ) from None
                problems = outcome.rejected
                counters["created"] += outcome.created
                counters["updated"] += outcome.updated
                counters["unchanged"] += outcome.unchanged
            lines = _problems(batch, first_row, problems, readable)
            counters["rejected"] += len({line[1] for line in lines})
            report.add(lines)
            rows_done += len(batch)
            service.checkpoint_import(
                session,
                job_id=job_id,
                values={
                    "rows_done": rows_done,
                    "line": point.line,
                    "byte_offset": point.byte_offset,
                    "report_bytes": report.sync(),
                    "checkpoint_at": utcnow(),
                    **counters,
                },
            )
            session.commit()
        processed += len(batch)
        progress.update(source.position, rows=processed)
    return processed


def _result(
    sessions: SessionFactory, job_id: int, state: str, request: ImportRequest
) -> ImportResult:
    with sessions() as session:
        job = service.import_job(session, job_id=job_id)
        return ImportResult(
            job_id=job.id,
            state=state,
            phase=job.phase,
            rows=job.rows_done,
            created=job.created,
            updated=job.updated,
            unchanged=job.unchanged,
            rejected=job.rejected,
            report_path=request.report_path,
        )
