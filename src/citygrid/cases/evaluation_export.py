"""The evaluation as an Excel workbook (openpyxl): a header row in the reader's language,
one row per group, the total last; counts as integers, rates as percentages, hours with one
decimal, so the figures stay numbers a spreadsheet can compute with."""

from __future__ import annotations

import io
from collections.abc import Callable

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from citygrid.cases.evaluation_schemas import EvaluationRead, EvaluationRow
from citygrid.kit.i18n import _

COUNT_FORMAT = "#,##0"
RATE_FORMAT = "0.0%"
HOURS_FORMAT = "0.0"

Column = tuple[str, Callable[[EvaluationRow], object], str | None]


def columns() -> list[Column]:
    """(header, value of a row, number format) of each column, headers translated."""
    return [
        (_("Code"), lambda row: row.key, None),
        (_("Department or unit"), lambda row: row.name, None),
        (_("Cases reported"), lambda row: row.reported, COUNT_FORMAT),
        (_("Cases registered"), lambda row: row.registered, COUNT_FORMAT),
        (_("Cases rejected"), lambda row: row.rejected, COUNT_FORMAT),
        (_("Cases dispatched"), lambda row: row.dispatched, COUNT_FORMAT),
        (_("Cases handled"), lambda row: row.handled, COUNT_FORMAT),
        (_("Cases closed"), lambda row: row.closed, COUNT_FORMAT),
        (_("Closed on time"), lambda row: row.closed_on_time, COUNT_FORMAT),
        (_("Reworked"), lambda row: row.reworked, COUNT_FORMAT),
        (_("Overdue now"), lambda row: row.overdue, COUNT_FORMAT),
        (_("Registration rate"), lambda row: row.registration_rate, RATE_FORMAT),
        (_("Closure rate"), lambda row: row.closure_rate, RATE_FORMAT),
        (_("On-time closure rate"), lambda row: row.on_time_closure_rate, RATE_FORMAT),
        (_("Rework rate"), lambda row: row.rework_rate, RATE_FORMAT),
        (
            _("Mean handling time (working hours)"),
            lambda row: row.handling_hours_avg,
            HOURS_FORMAT,
        ),
        (
            _("90th percentile handling time (working hours)"),
            lambda row: row.handling_hours_p90,
            HOURS_FORMAT,
        ),
    ]


def workbook_bytes(report: EvaluationRead) -> bytes:
    """The workbook of an evaluation, as the bytes of an .xlsx file."""
    book = Workbook()
    book.remove(book.worksheets[0])
    sheet = book.create_sheet(f"{report.date_from.isoformat()}~{report.date_to.isoformat()}")
    spec = columns()
    sheet.append([header for header, _value, _format in spec])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for item in [*report.items, report.total]:
        sheet.append([value(item) for _header, value, _format in spec])
        for cell, (_header, _value, number_format) in zip(sheet[sheet.max_row], spec, strict=True):
            if number_format is not None:
                cell.number_format = number_format
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "C2"
    for index, (header, _value, _format) in enumerate(spec, start=1):
        width = 18 if index == 1 else max(10, min(28, len(header) + 2))
        sheet.column_dimensions[get_column_letter(index)].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
