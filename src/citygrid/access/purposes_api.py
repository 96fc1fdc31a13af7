"""The catalogue of purposes of use, with their legal basis: public, no personal data."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from citygrid.access.policy import default_policy
from citygrid.kit.i18n import localised

router = APIRouter(prefix="/api/v1", tags=["access"])


class PurposeRead(BaseModel):
    """A purpose of use: why personal data may be read, and on what legal basis."""

    code: str = Field(examples=["patrol-update"])
    name: str = Field(description="In the request's language")
    name_zh: str
    name_en: str
    legal_basis: Literal["statutory", "consent"] = Field(
        description="statutory: a duty in law (no consent needed, still logged and shown to "
        "the resident); consent: the resident's active consent is required"
    )
    law: str


class PurposeList(BaseModel):
    """Every purpose of the catalogue and the policy version that defines them."""

    items: list[PurposeRead]
    policy_version: int


@router.get("/purposes", response_model=PurposeList)
def list_purposes() -> PurposeList:
    """The catalogue of purposes of use (the ``purpose`` every read of personal data names)."""
    policy = default_policy()
    return PurposeList(
        items=[
            PurposeRead(
                code=purpose.code,
                name=localised(purpose.name_zh, purpose.name_en),
                name_zh=purpose.name_zh,
                name_en=purpose.name_en,
                legal_basis=purpose.legal_basis.value,
                law=purpose.law,
            )
            for purpose in policy.purposes.values()
        ],
        policy_version=policy.version,
    )
