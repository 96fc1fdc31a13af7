"""Pydantic shapes of the evaluation (综合评价): one row per department, street, community or
grid, and the total of the caller's territory. Rates are fractions from 0 to 1, None when
their denominator is 0; times are in working hours."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

GroupBy = Literal["department", "street", "community", "grid"]


class EvaluationRow(BaseModel):
    """The figures of one group (or of the total)."""

    key: str = Field(description="Department slug or territorial code; empty for the total")
    name: str = Field(description="The department's or unit's name in the caller's language")
    reported: int = Field(description="Cases reported in the period, less duplicates")
    registered: int = Field(description="... of which registered (立案)")
    rejected: int = Field(description="... rejected as not meeting the criterion")
    dispatched: int = Field(description="... dispatched to a department")
    handled: int = Field(description="... answered by the department at least once")
    closed: int = Field(description="... closed after a passed verification (结案)")
    closed_on_time: int = Field(description="... closed by the working-time deadline")
    reworked: int = Field(description="... sent back at least once by the verifier (返工)")
    overdue: int = Field(description="... still with the department past the deadline now")
    registration_rate: float | None = Field(description="立案率 = registered / reported")
    closure_rate: float | None = Field(description="结案率 = closed / registered")
    on_time_closure_rate: float | None = Field(
        description="按期结案率 = closed on time / registered"
    )
    rework_rate: float | None = Field(description="返工率 = reworked / handled")
    handling_hours_avg: float | None = Field(
        description="Mean working hours from the last dispatch to the last feedback"
    )
    handling_hours_p90: float | None = Field(
        description="90th percentile (continuous) of the same working hours"
    )


class EvaluationRead(BaseModel):
    """The evaluation of the cases reported in a period within the caller's territory."""

    group_by: GroupBy
    date_from: date = Field(serialization_alias="from", description="First day (China time)")
    date_to: date = Field(serialization_alias="to", description="Last day, included")
    generated_at: datetime
    items: list[EvaluationRow]
    total: EvaluationRow
