"""Reading a submission: JSON, or a form (multipart with ``photos``) from the API or a page.

The photos are checked and cleaned here, before the route takes the database's write lock
(``api.write_session``): the slow part of an upload never holds up other writers, and a
bad photo is refused before anything is touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from citygrid.cases.intake import photo_limits
from citygrid.cases.photos import PHOTO_FIELD, PhotoLimits, ProcessedPhoto, check_count, process
from citygrid.kit.errors import BadRequest, CitygridError, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.settings import Settings

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
#: Room for the fields of a form besides its photos.
FORM_OVERHEAD_BYTES = 256 * 1024
#: Form fields of the pages that are not fields of the report.
PAGE_FIELDS = frozenset({"csrf_token", "report_token", "idempotency_key", "via"})
#: A form's flat contact fields, and where they go in ``CaseCreate``.
CONTACT_FIELDS = {"reporter_name": "name", "reporter_phone": "phone"}


class PayloadTooLarge(CitygridError):
    """The request is larger than all the photos it may carry together."""

    status_code = 413
    code = "payload_too_large"


@dataclass
class Submission:
    """What a request carried: the fields (as sent), the checked photos, and the page's own
    fields (CSRF token, idempotency key)."""

    fields: dict[str, Any]
    photos: list[ProcessedPhoto] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    is_form: bool = False


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _check_length(request: Request, limits: PhotoLimits) -> None:
    declared = request.headers.get("content-length")
    ceiling = limits.max_bytes * limits.max_count + FORM_OVERHEAD_BYTES
    if declared is not None and declared.isdigit() and int(declared) > ceiling:
        raise PayloadTooLarge(
            _("photos: the submission is too large"),
            details=[{"field": PHOTO_FIELD, "reason": _("the submission is too large")}],
        )


async def read_photos(
    uploads: Sequence[UploadFile], limits: PhotoLimits, *, field_name: str = PHOTO_FIELD
) -> list[ProcessedPhoto]:
    """Check and clean uploaded files (an empty file input sends one empty, nameless part:
    that is no photo)."""
    files = [upload for upload in uploads if upload.filename or (upload.size or 0) > 0]
    check_count(len(files), limits, field_name)
    processed = []
    for index, upload in enumerate(files):
        name = f"{field_name}[{index}]"
        if upload.size is not None and upload.size > limits.max_bytes:
            # Refused by its declared size, without reading it.
            raise ValidationFailed.one(
                name,
                _("the photo is larger than {size} MB").format(
                    size=f"{limits.max_bytes / (1024 * 1024):.1f}".rstrip("0").rstrip(".")
                ),
            )
        data = await upload.read(limits.max_bytes + 1)
        processed.append(await run_in_threadpool(process, data, limits, field=name))
    return processed


def form_fields(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The report's fields of a form (empty values dropped; the contact grouped as
    ``reporter_contact``) and the page's own fields."""
    fields: dict[str, Any] = {}
    extra: dict[str, str] = {}
    contact: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) or key == PHOTO_FIELD:
            continue
        text = value.strip()
        if key in PAGE_FIELDS:
            extra[key] = text
        elif key in CONTACT_FIELDS:
            if text:
                contact[CONTACT_FIELDS[key]] = text
        elif text:
            fields[key] = text
    if contact:
        fields["reporter_contact"] = contact
    return fields, extra


async def read_submission(
    request: Request, *, allowed_fields: frozenset[str] | None = None
) -> Submission:
    """The submission of a request: JSON, or a form with photos (checked and cleaned)."""
    content_type = request.headers.get("content-type", "").lower()
    limits = photo_limits(_settings(request))
    if content_type.startswith(FORM_TYPES):
        _check_length(request, limits)
        form = await request.form()
        fields, extra = form_fields(form)
        uploads = [item for item in form.getlist(PHOTO_FIELD) if isinstance(item, UploadFile)]
        photos = await read_photos(uploads, limits)
        return Submission(fields=fields, photos=photos, extra=extra, is_form=True)
    if content_type.startswith("application/json") or not content_type:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(
                _("The body is not valid JSON."),
                details=[{"field": "request", "reason": _("not valid JSON")}],
            ) from None
        if not isinstance(body, dict):
            raise ValidationFailed.one("request", _("send a JSON object"))
        return Submission(fields=body)
    raise ValidationFailed.one(
        "request", _("send JSON, or a multipart form with the photos as photos")
    )


def only(fields: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """The fields among ``names`` (the rest are ignored)."""
    return {key: value for key, value in fields.items() if key in names}
