"""The evaluation page (``/cases/evaluation``: charts and a table) and its Excel export
(``/cases/evaluation.xlsx``). Thin: the figures come from ``citygrid.cases.evaluation``;
the charts are SVG drawn by the template, so they need no script and no library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from citygrid.access.deps import CurrentActor
from citygrid.cases import evaluation
from citygrid.cases.evaluation_export import workbook_bytes
from citygrid.cases.evaluation_schemas import EvaluationRow
from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.kit.web import SessionDep, render

router = APIRouter(include_in_schema=False)

#: Groups drawn in the charts (the largest cohorts); the table lists them all.
CHART_GROUPS = 15
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

GroupParam = Annotated[str | None, Query(max_length=20)]
FromParam = Annotated[str | None, Query(alias="from", max_length=20)]
ToParam = Annotated[str | None, Query(alias="to", max_length=20)]


@dataclass(frozen=True, slots=True)
class Bar:
    """One group's bars in a chart: its label and values scaled 0..1 of the axis."""

    label: str
    values: tuple[float | None, ...]
    texts: tuple[str, ...]


def group_labels() -> dict[str, str]:
    """The groupings' names in the current language."""
    return {
        "department": _("Department"),
        "street": _("Street"),
        "community": _("Community"),
        "grid": _("Grid"),
    }


def percent(value: float | None) -> str:
    """A rate as the table shows it."""
    return "–" if value is None else f"{value * 100:.1f}%"


def hours(value: float | None) -> str:
    """Working hours as the table shows them."""
    return "–" if value is None else f"{value:.1f}"


def _rate_bars(items: list[EvaluationRow]) -> list[Bar]:
    return [
        Bar(
            label=item.name,
            values=(item.closure_rate, item.on_time_closure_rate),
            texts=(percent(item.closure_rate), percent(item.on_time_closure_rate)),
        )
        for item in items
    ]


def _hour_bars(items: list[EvaluationRow]) -> tuple[list[Bar], float]:
    longest = max(
        (
            value
            for item in items
            for value in (item.handling_hours_avg, item.handling_hours_p90)
            if value is not None
        ),
        default=0.0,
    )
    scale = longest or 1.0
    bars = [
        Bar(
            label=item.name,
            values=tuple(
                None if value is None else value / scale
                for value in (item.handling_hours_avg, item.handling_hours_p90)
            ),
            texts=(hours(item.handling_hours_avg), hours(item.handling_hours_p90)),
        )
        for item in items
    ]
    return bars, longest


@router.get("/cases/evaluation", response_class=HTMLResponse)
def evaluation_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    group_by: GroupParam = None,
    date_from: FromParam = None,
    date_to: ToParam = None,
) -> Response:
    """The evaluation of the caller's territory: the form, two charts and the table."""
    form = {"group_by": group_by or "department", "from": date_from or "", "to": date_to or ""}
    try:
        grouping = evaluation.parse_group_by(group_by)
        period = evaluation.parse_period(date_from, date_to, now=utcnow())
    except ValidationFailed as error:
        return render(
            request,
            "cases/evaluation.html",
            status_code=422,
            errors=error.details,
            form=form,
            report=None,
            group_labels=group_labels(),
        )
    report = evaluation.evaluate(session, actor, group_by=grouping, period=period)
    charted = report.items[:CHART_GROUPS]
    hour_bars, longest = _hour_bars(charted)
    export = urlencode(
        {"group_by": grouping, "from": period.first.isoformat(), "to": period.last.isoformat()}
    )
    return render(
        request,
        "cases/evaluation.html",
        errors=[],
        form={
            "group_by": grouping,
            "from": period.first.isoformat(),
            "to": period.last.isoformat(),
        },
        report=report,
        group_labels=group_labels(),
        rate_bars=_rate_bars(charted),
        hour_bars=hour_bars,
        hour_axis=["0", *(f"{longest * share:.1f}" for share in (0.25, 0.5, 0.75, 1.0))],
        more_groups=max(0, len(report.items) - CHART_GROUPS),
        export_url=f"/cases/evaluation.xlsx?{export}",
        percent=percent,
        hours=hours,
    )


@router.get("/cases/evaluation.xlsx")
def evaluation_workbook(
    session: SessionDep,
    actor: CurrentActor,
    group_by: GroupParam = None,
    date_from: FromParam = None,
    date_to: ToParam = None,
) -> Response:
    """The evaluation as an Excel workbook (422 naming the field on bad input)."""
    grouping = evaluation.parse_group_by(group_by)
    period = evaluation.parse_period(date_from, date_to, now=utcnow())
    report = evaluation.evaluate(session, actor, group_by=grouping, period=period)
    filename = f"evaluation-{grouping}-{period.first.isoformat()}-{period.last.isoformat()}.xlsx"
    return Response(
        workbook_bytes(report),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
