"""Reading a department's CSV or XLSX file row by row, in constant memory, for the bulk import.

A source yields each data row as a dict of column -> value (empty cells left out, so an
optional field takes its default and a required one is reported missing) with its line in the
file, and knows how far it has read (bytes of a CSV file, rows of a sheet) and where to
resume: a CSV file from the byte offset after the last row of a committed batch (a seek, so a
resumed 10 GB import does not re-read what it applied), a sheet from its row number.

Encodings: UTF-8 with or without a byte order mark, or GB18030 (the superset of GBK and
GB2312 that Chinese offices' spreadsheets export), detected from the first 64 KiB unless
given; a later line that does not decode is reported as a rejected row, not a crash.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _

SNIFF_BYTES = 64 * 1024
# The fingerprint samples: the head and the tail, and this many pieces between them.
FINGERPRINT_PIECE = 256 * 1024
FINGERPRINT_SAMPLES = 16

# Not a format error: csv's own limit (128 KiB) would refuse a long but legitimate cell.
csv.field_size_limit(16 * 1024 * 1024)


class SourceRow(NamedTuple):
    """One data row: its line in the file (sheet row for XLSX), its values by column, and
    why it could not be read (the line is not text in the file's encoding), if so. (A named
    tuple: one is built per row of a file of millions.)"""

    line: int
    values: dict[str, Any]
    unreadable: str | None = None


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where to continue reading: after ``line`` (and, for CSV, at ``byte_offset``)."""

    line: int = 0
    byte_offset: int = 0


class TableSource(Protocol):
    """A file of rows with a header."""

    columns: list[str]
    unit: str  # "bytes" or "rows": what ``position`` and ``total`` count
    total: int | None

    @property
    def position(self) -> int:
        """How far the reading has got, in ``unit``."""
        ...

    @property
    def resume_point(self) -> ResumePoint:
        """The point right after the last row yielded."""
        ...

    def rows(self, start: ResumePoint) -> Iterator[SourceRow]:
        """The data rows after ``start`` (the header's end when nothing was read yet)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


def fingerprint(path: Path) -> str:
    """SHA-256 over the file's size and samples of it (the first and last 256 KiB and 16
    pieces between): the same file, re-run, is recognised in milliseconds whatever its size,
    and any edit of its length, head or tail makes another file. An edit of the same length
    between samples is not seen: a department re-exporting a changed file changes it more."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        if size <= FINGERPRINT_PIECE * (FINGERPRINT_SAMPLES + 2):
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
            return digest.hexdigest()
        step = (size - FINGERPRINT_PIECE) // (FINGERPRINT_SAMPLES + 1)
        for index in range(FINGERPRINT_SAMPLES + 2):
            offset = min(index * step, size - FINGERPRINT_PIECE)
            handle.seek(offset)
            digest.update(handle.read(FINGERPRINT_PIECE))
    return digest.hexdigest()


def detect_encoding(head: bytes) -> str:
    """``utf-8-sig`` (a byte order mark), ``utf-8`` (the sample decodes as UTF-8) or
    ``gb18030``."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # Not final: the sample may end inside a character.
        decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _check_encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValidationFailed.one("encoding", _("not a known text encoding")) from None


def _header(cells: list[Any]) -> list[str]:
    columns = [str(cell).strip() if cell is not None else "" for cell in cells]
    while columns and not columns[-1]:
        columns.pop()
    if not columns:
        raise ValidationFailed.one("file", _("the first row must name the columns"))
    seen: set[str] = set()
    for position, column in enumerate(columns, 1):
        if not column:
            raise ValidationFailed.one("file", _("a column of the first row has no name"))
        if column in seen:
            # By position, not by its text: see check_columns.
            raise ValidationFailed.one(
                "file",
                _("column %(position)d of the first row repeats an earlier column")
                % {"position": position},
            )
        seen.add(column)
    return columns


class CsvSource:
    """A CSV file (comma separated, RFC 4180 quoting), read line by line from a byte offset."""

    unit = "bytes"

    def __init__(self, path: Path, *, encoding: str | None = None) -> None:
        self.path = path
        self.total: int | None = path.stat().st_size
        self._handle: IO[bytes] = path.open("rb")
        head = self._handle.read(SNIFF_BYTES)
        self.encoding = _check_encoding(encoding) if encoding else detect_encoding(head)
        self._start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        if self.encoding == "utf-8-sig":
            self.encoding = "utf-8"
        self._offset = self._start
        self._line = 0
        self._unreadable = False
        self._handle.seek(self._start)
        reader = csv.reader(self._lines())
        first = next(reader, None)
        if first is None:
            raise ValidationFailed.one("file", _("the file is empty"))
        if self._unreadable:
            raise ValidationFailed.one(
                "encoding", _("the first row is not text in this encoding; name it with --encoding")
            )
        self.columns = _header(first)
        self._data_start = ResumePoint(line=self._line, byte_offset=self._offset)

    def _lines(self) -> Iterator[str]:
        # csv.reader pulls one line at a time and stops at the end of a record, so after
        # each record the offset counted here is exactly the end of that record.
        encoding = self.encoding
        for raw in self._handle:
            self._offset += len(raw)
            self._line += 1
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError:
                self._unreadable = True
                yield raw.decode(encoding, errors="replace")

    @property
    def position(self) -> int:
        """Bytes read so far."""
        return self._offset

    @property
    def resume_point(self) -> ResumePoint:
        """After the last row yielded."""
        return ResumePoint(line=self._line, byte_offset=self._offset)

    def rows(self, start: ResumePoint) -> Iterator[SourceRow]:
        """The data rows from ``start`` (after the header when it is the beginning)."""
        if start.line < self._data_start.line:
            start = self._data_start
        self._handle.seek(start.byte_offset)
        self._offset = start.byte_offset
        self._line = start.line
        columns = self.columns
        width = len(columns)
        reader = csv.reader(self._lines())
        first_line = self._line + 1
        unreadable_reason = _("the line is not text in the file's encoding")
        too_long = _("the row has more cells than the first row has columns")
        for record in reader:
            line = first_line
            first_line = self._line + 1
            if self._unreadable:
                self._unreadable = False
                yield SourceRow(line, {}, unreadable_reason)
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if len(record) > width and any(cell.strip() for cell in record[width:]):
                yield SourceRow(line, {}, too_long)
                continue
            values = {column: cell for column, cell in zip(columns, record, strict=False) if cell}
            yield SourceRow(line, values)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def _cell(value: Any) -> Any:
    """A spreadsheet cell as the row shapes read it: dates as ISO dates, decimals as their
    shortest text (so that 1080.5 stays exact and 1080.123 is refused, not rounded)."""
    if isinstance(value, datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip()
    return value


class XlsxSource:
    """The first sheet of an XLSX workbook, streamed (openpyxl's read-only mode parses the
    sheet's XML as it goes, so memory stays flat whatever the number of rows)."""

    unit = "rows"

    def __init__(self, path: Path) -> None:
        from openpyxl import load_workbook

        self.path = path
        try:
            self._workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception:  # openpyxl raises zipfile, KeyError, XML errors...
            raise ValidationFailed.one("file", _("not a readable XLSX workbook")) from None
        self._sheet = self._workbook.worksheets[0]
        max_row = self._sheet.max_row
        self.total = max_row - 1 if max_row else None
        header_rows = self._sheet.iter_rows(min_row=1, max_row=1, values_only=True)
        first = next(header_rows, None)
        if first is None:
            raise ValidationFailed.one("file", _("the file is empty"))
        self.columns = _header(list(first))
        self._line = 1

    @property
    def position(self) -> int:
        """Data rows read so far."""
        return max(self._line - 1, 0)

    @property
    def resume_point(self) -> ResumePoint:
        """After the last row yielded."""
        return ResumePoint(line=self._line)

    def rows(self, start: ResumePoint) -> Iterator[SourceRow]:
        """The data rows after sheet row ``start.line`` (the header is row 1)."""
        self._line = max(start.line, 1)
        columns = self.columns
        width = len(columns)
        too_long = _("the row has more cells than the first row has columns")
        for cells in self._sheet.iter_rows(min_row=self._line + 1, values_only=True):
            self._line += 1
            if not any(cell is not None and cell != "" for cell in cells):
                continue
            if len(cells) > width and any(cell not in (None, "") for cell in cells[width:]):
                yield SourceRow(self._line, {}, too_long)
                continue
            values = {
                column: _cell(cell)
                for column, cell in zip(columns, cells, strict=False)
                if cell is not None and cell != ""
            }
            yield SourceRow(self._line, values)

    def close(self) -> None:
        """Close the workbook."""
        self._workbook.close()


def open_source(path: Path, *, encoding: str | None = None) -> TableSource:
    """A CSV or XLSX source for the file (told apart by its content, not its name)."""
    if not path.is_file():
        raise ValidationFailed.one("file", _("no such file"))
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic == b"PK\x03\x04":  # a ZIP container: XLSX
        if encoding:
            raise ValidationFailed.one("encoding", _("only a CSV file has an encoding"))
        return XlsxSource(path)
    return CsvSource(path, encoding=encoding)
