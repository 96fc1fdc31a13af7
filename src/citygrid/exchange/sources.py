"""The department-held data as sources of the access gateway.

``DatasetRecords``: a dataset's rows about a person, each with its own place, for the
gateway's notifications (the webhooks' fan-out): the gateway keeps the rows inside the
recipient's scope and shows their fields as its grant says.

The field sources: with them, a person read through the gateway (``/api/v1/persons/...``)
carries the allowance, pension, tenancy and criminal-record fields, masked, gated by consent
and logged like every other field.

``register_sources()`` plugs them in once per process. Nothing calls it yet: once plugged in,
every view of a department granted one of these classes lists it (and a consent purpose's
refusal names it among the missing classes), which the access tests do not expect yet; the
app factory should call it when the gateway's owner has agreed (see docs/exchange.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.exchange import repository
from citygrid.exchange.catalogue import default_catalogue
from citygrid.exchange.models import (
    AllowanceRecord,
    CriminalRecordFlag,
    PensionRecord,
    TenancyRecord,
    TenancyStatus,
)


class DatasetRecords:
    """A dataset's rows about a person, with their places (``gateway.RecordSource``): each
    field is shown as the policy field its ``mask_as`` names."""

    def __init__(self, dataset: str) -> None:
        spec = default_catalogue().datasets[dataset]
        self.model = repository.DATASET_MODELS[dataset]
        self.fields: tuple[tuple[str, str], ...] = tuple(
            (field.name, field.mask_as) for field in spec.fields
        )

    def load(
        self, session: Session, *, person_id: int, scopes: Sequence[str]
    ) -> list[gateway.PlacedRecord]:
        """The person's rows whose place lies in one of ``scopes``, oldest first."""
        rows = repository.placed_held_rows(session, self.model, person_id=person_id, scopes=scopes)
        return [gateway.PlacedRecord(place=row.place, values=row._asdict()) for row in rows]


@lru_cache(maxsize=16)
def dataset_records(dataset: str) -> DatasetRecords:
    """The record source of a dataset of the catalogue (one per process)."""
    return DatasetRecords(dataset)


class AllowanceSource:
    """``allowance_status`` and ``allowance_amount`` (civil affairs)."""

    fields: tuple[str, ...] = ("allowance_status", "allowance_amount")

    def load(self, session: Session, person_ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """The allowance of each person who has one."""
        rows = repository.held_rows(session, AllowanceRecord, person_ids=person_ids)
        return {
            row.person_id: {
                "allowance_status": row.status.value,
                "allowance_amount": str(row.amount),
            }
            for row in rows
        }


class PensionSource:
    """``pension_status`` and ``pension_amount`` (social security)."""

    fields: tuple[str, ...] = ("pension_status", "pension_amount")

    def load(self, session: Session, person_ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """The pension of each person who has one."""
        rows = repository.held_rows(session, PensionRecord, person_ids=person_ids)
        return {
            row.person_id: {"pension_status": row.status.value, "pension_amount": str(row.amount)}
            for row in rows
        }


class TenancySource:
    """``tenancy_status`` and ``tenancy_unit`` (rental housing): the active tenancy, else the
    latest one."""

    fields: tuple[str, ...] = ("tenancy_status", "tenancy_unit")

    def load(self, session: Session, person_ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """The current (or latest) tenancy of each person who has one."""
        chosen: dict[int, TenancyRecord] = {}
        for row in repository.held_rows(session, TenancyRecord, person_ids=person_ids):
            current = chosen.get(row.person_id)
            rank = (row.status is TenancyStatus.ACTIVE, row.since)
            if current is None or rank > (current.status is TenancyStatus.ACTIVE, current.since):
                chosen[row.person_id] = row
        return {
            person_id: {"tenancy_status": row.status.value, "tenancy_unit": row.unit_id}
            for person_id, row in chosen.items()
        }


class CriminalRecordSource:
    """``criminal_record`` (public security, confidential)."""

    fields: tuple[str, ...] = ("criminal_record",)

    def load(self, session: Session, person_ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """The flag of each person public security published one for."""
        rows = repository.held_rows(session, CriminalRecordFlag, person_ids=person_ids)
        return {row.person_id: {"criminal_record": row.criminal_record} for row in rows}


SOURCES: tuple[gateway.FieldSource, ...] = (
    AllowanceSource(),
    PensionSource(),
    TenancySource(),
    CriminalRecordSource(),
)
_registered = False


def register_sources() -> None:
    """Plug the exchange's field sources into the access gateway (once per process)."""
    global _registered
    if _registered:
        return
    for source in SOURCES:
        gateway.register_field_source(source)
    _registered = True
