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

Reading ahead: on a file of more than a few batches, a reader process reads and validates the
next batches (``service.parse_rows``: text to typed values, no database) while this process
looks up the persons and writes the batch before; the two halves of a row's work then run on
two processors. The reader holds at most ``READ_AHEAD`` batches that are not yet written and
stops on its own when this process is gone, so memory stays flat and a killed import leaves
nothing running. The checkpoint is still that of the last committed batch.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import pickle
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from functools import cache
from itertools import islice
from operator import attrgetter
from pathlib import Path
from types import UnionType
from typing import IO, Any, Protocol, Union, get_args, get_origin

from sqlalchemy.orm import Session

from citygrid.exchange import service
from citygrid.exchange.models import ImportPhase
from citygrid.exchange.schemas import MAX_BATCH, ROW_MODELS, PublishMode, RowProblem
from citygrid.exchange.tabular import ResumePoint, TableSource, fingerprint, open_source
from citygrid.kit.actor import Actor
from citygrid.kit.db import tune_for_bulk_writes
from citygrid.kit.errors import CitygridError, Conflict, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow

# Rows per batch (per transaction): as many as a publish may carry. Each commit writes the
# index pages its batch touched to the WAL, and a batch of thousands of persons spread over
# the city touches most of them: 10,000 rows a commit cost a sixth less CPU than 5,000.
DEFAULT_BATCH = MAX_BATCH
# Batches the reader process may hold ahead of the writer (queued and in hand).
READ_AHEAD = 2
# Read ahead on files larger than this (CSV bytes) or with more rows (XLSX): below it the
# second process costs more than it saves.
READ_AHEAD_MIN_BYTES = 2 * 1024 * 1024
READ_AHEAD_MIN_ROWS = 20_000
# How often (seconds) the reader and the writer check that the other is still there.
_ALIVE_CHECK = 1.0
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
    # Read and validate in a second process (None: when the file is large enough).
    read_ahead: bool | None = None

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


@dataclass
class _Chunk:
    """A batch of the file, read and validated, ready for the database's checks: the line
    of each of its rows, the rows that could not be read (batch position, reason), the batch
    position of each row handed to the service, those rows parsed, where to resume after the
    batch and how far the reading has got."""

    lines: list[int]
    unreadable: list[tuple[int, str]]
    readable: list[int]
    parsed: service.ParsedRows
    resume: ResumePoint
    position: int


def _chunks(source: TableSource, start: ResumePoint, dataset: str, size: int) -> Iterator[_Chunk]:
    """The file's batches from ``start``, each read and validated."""
    rows = source.rows(start)
    while batch := list(islice(rows, size)):
        readable = [index for index, row in enumerate(batch) if row.unreadable is None]
        yield _Chunk(
            lines=[row.line for row in batch],
            unreadable=[
                (index, row.unreadable) for index, row in enumerate(batch) if row.unreadable
            ],
            readable=readable,
            parsed=service.parse_rows(dataset, [batch[index].values for index in readable]),
            resume=source.resume_point,
            position=source.position,
        )


Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _optional(codec: Codec) -> Codec:
    encode, decode = codec
    return (
        lambda value: None if value is None else encode(value),
        lambda value: None if value is None else decode(value),
    )


def _field_codec(annotation: Any) -> Codec | None:
    """How a row field's values cross the pipe (encode here, decode there): dates as day
    numbers, decimals as text, enumeration members as their values, the rest as they are.
    Unpickling a date or a member costs ten times the rebuilding of one from these."""
    kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
    optional = get_origin(annotation) in (Union, UnionType) and len(kinds) == 1
    kind = kinds[0] if optional else annotation
    codec: Codec | None = None
    if isinstance(kind, type) and issubclass(kind, Enum):
        codec = (attrgetter("value"), kind._value2member_map_.__getitem__)
    elif kind is date:
        codec = (date.toordinal, date.fromordinal)
    elif kind is Decimal:
        codec = (str, Decimal)
    if codec is not None and optional:
        return _optional(codec)
    return codec


@cache
def _codecs(dataset: str) -> tuple[Codec | None, ...]:
    return tuple(
        _field_codec(info.annotation) for info in ROW_MODELS[dataset].model_fields.values()
    )


def _pack(chunk: _Chunk, dataset: str) -> bytes:
    """A chunk as bytes for the pipe, its parsed rows as columns of plain values."""
    parsed = chunk.parsed
    columns = [
        list(map(codec[0], values)) if codec else values
        for codec, values in zip(_codecs(dataset), parsed.columns.values(), strict=True)
    ]
    problems = [(problem.index, problem.field, problem.reason) for problem in parsed.problems]
    return pickle.dumps(
        (
            chunk.lines,
            chunk.unreadable,
            chunk.readable,
            parsed.received,
            parsed.indexes,
            columns,
            problems,
            chunk.resume,
            chunk.position,
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def _unpack(data: bytes, dataset: str) -> _Chunk:
    lines, unreadable, readable, received, indexes, columns, problems, resume, position = (
        pickle.loads(data)  # noqa: S301 (our own reader's bytes)
    )
    parsed = service.ParsedRows(
        received=received,
        indexes=indexes,
        columns={
            name: list(map(codec[1], values)) if codec else values
            for name, codec, values in zip(
                ROW_MODELS[dataset].model_fields, _codecs(dataset), columns, strict=True
            )
        },
        problems=[
            RowProblem(index=index, field=field, reason=reason) for index, field, reason in problems
        ],
    )
    return _Chunk(lines, unreadable, readable, parsed, resume, position)


_END = b""


def _reader_main(request: ImportRequest, start: ResumePoint, channel: Any, parent: int) -> None:
    """The reader process: the file's chunks into ``channel``, then ``_END``; an error
    instead, pickled. It stops when the importing process is gone."""

    def send(item: Any) -> bool:
        while True:
            try:
                channel.put(item, timeout=_ALIVE_CHECK)
                return True
            except queue.Full:
                if os.getppid() != parent:
                    channel.cancel_join_thread()  # nobody will read what is queued
                    return False

    try:
        source = open_source(request.path, encoding=request.encoding)
        try:
            for chunk in _chunks(source, start, request.dataset, request.batch_size):
                if not send(_pack(chunk, request.dataset)):
                    return
        finally:
            source.close()
    except Exception as error:  # handed to the importing process, which raises it
        try:
            failure = pickle.dumps(error)
        except Exception:
            failure = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
        send(("error", failure))
        return
    send(_END)


class _ReadAhead:
    """The chunks of the file from ``start``, read and validated by a reader process."""

    def __init__(self, request: ImportRequest, start: ResumePoint) -> None:
        # fork: the reader starts in milliseconds, with the modules already imported (a
        # spawned one would import them again, a second of a short import).
        context = (
            multiprocessing.get_context("fork")
            if "fork" in multiprocessing.get_all_start_methods()
            else multiprocessing.get_context("spawn")
        )
        self._dataset = request.dataset
        self._channel = context.Queue(maxsize=max(READ_AHEAD - 1, 1))
        self._process = context.Process(
            target=_reader_main,
            args=(request, start, self._channel, os.getpid()),
            name="citygrid-import-reader",
            daemon=True,
        )
        self._process.start()

    def _next(self) -> Any:
        while True:
            try:
                return self._channel.get(timeout=_ALIVE_CHECK)
            except queue.Empty:
                if self._process.exitcode is None:
                    continue
                try:  # it may have exited right after its last put
                    return self._channel.get(timeout=_ALIVE_CHECK)
                except queue.Empty:
                    raise CitygridError(
                        _(
                            "The process reading the file stopped unexpectedly (exit status "
                            "%(status)s). The batches before it were applied; run the import "
                            "again to continue."
                        )
                        % {"status": self._process.exitcode},
                        code="reader_stopped",
                    ) from None

    def __iter__(self) -> Iterator[_Chunk]:
        while (item := self._next()) != _END:
            if isinstance(item, tuple):
                raise pickle.loads(item[1])  # noqa: S301 (our own child's bytes)
            yield _unpack(item, self._dataset)

    def close(self) -> None:
        """Stop the reader (it may be ahead of an import that stopped early)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._channel.close()
        self._channel.join_thread()


def _reads_ahead(request: ImportRequest, source: TableSource) -> bool:
    if request.read_ahead is not None:
        return request.read_ahead
    if source.total is None:
        return False
    limit = READ_AHEAD_MIN_BYTES if source.unit == "bytes" else READ_AHEAD_MIN_ROWS
    return source.total > limit


def _problems(
    chunk: _Chunk, first_row: int, problems: list[RowProblem]
) -> list[tuple[int, int, str, str]]:
    """Rejected fields as report lines: (line, data row number, field, reason)."""
    lines = [
        (
            chunk.lines[chunk.readable[problem.index]],
            first_row + chunk.readable[problem.index],
            problem.field,
            problem.reason,
        )
        for problem in problems
    ]
    for position, reason in chunk.unreadable:
        lines.append((chunk.lines[position], first_row + position, "record", reason))
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
    reader = _ReadAhead(request, start) if _reads_ahead(request, source) else None
    chunks = reader or _chunks(source, start, request.dataset, request.batch_size)
    try:
        for chunk in chunks:
            first_row = rows_done + 1
            with sessions() as session:
                tune_for_bulk_writes(session)
                service.claim_import_step(session, job_id=job_id, rows_done=rows_done, phase=phase)
                if checking:
                    problems = service.check_rows(
                        session, actor, dataset=request.dataset, records=chunk.parsed
                    )
                else:
                    try:
                        outcome = service.publish_rows(
                            session, actor, dataset=request.dataset, mode=mode, records=chunk.parsed
                        )
                    except ValidationFailed:
                        # all_or_nothing: the file passed its check, but the database changed
                        # since.
                        raise Conflict(
                            _(
                                "Rows from line %(line)d were rejected while being applied: the "
                                "data changed after the file was checked. The %(rows)d rows "
                                "before them were applied; run the import again to continue, "
                                "or with --restart."
                            )
                            % {"line": chunk.lines[0], "rows": rows_done}
                        ) from None
                    problems = outcome.rejected
                    counters["created"] += outcome.created
                    counters["updated"] += outcome.updated
                    counters["unchanged"] += outcome.unchanged
                lines = _problems(chunk, first_row, problems)
                counters["rejected"] += len({line[1] for line in lines})
                report.add(lines)
                rows_done += len(chunk.lines)
                service.checkpoint_import(
                    session,
                    job_id=job_id,
                    values={
                        "rows_done": rows_done,
                        "line": chunk.resume.line,
                        "byte_offset": chunk.resume.byte_offset,
                        "report_bytes": report.sync(),
                        "checkpoint_at": utcnow(),
                        **counters,
                    },
                )
                session.commit()
            processed += len(chunk.lines)
            progress.update(chunk.position, rows=processed)
    finally:
        if reader is not None:
            reader.close()
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
