"""Intake with photos: the rules around ``service.create_case`` for reports that come with
pictures (grid worker, hotline, public page, API multipart), photos at feedback and
verification, serving the photos by scope, and the reporter's contact through the access
gateway.

Order of a submission, and nothing is stored when a step refuses:

1. the caller may file (role), and an ``Idempotency-Key`` seen before returns the first
   case at once (no second photo set);
2. the photos were checked and cleaned before (``photos.process_all``, outside the write
   lock): count, size, real image, no bomb; EXIF GPS read;
3. without ``lat``/``lon`` the first photo's GPS position is the location;
4. the fields are validated (``CaseCreate``) and the case filed (category, location inside
   the city and, for a grid worker, inside her territory);
5. the files are written under the media directory by content hash and the photo rows
   inserted; a rollback after this removes the files it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.access.models import Role
from citygrid.cases import repository, service
from citygrid.cases.models import Action, Case, CasePhoto, CaseSource, PhotoStage
from citygrid.cases.photos import (
    PHOTO_FIELD,
    PhotoLimits,
    PhotoStore,
    ProcessedPhoto,
    thumbnail_path,
)
from citygrid.cases.schemas import CaseCreate, PhotoRead, ReporterRead, TransitionCreate
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.territory.locator import Locator

BaseModelT = TypeVar("BaseModelT", bound=BaseModel)

CITIZEN_ROLE = service.CITIZEN_ROLE

#: Photos may come with these steps of the loop, as this stage.
_PHOTO_STAGES = {Action.FEEDBACK: PhotoStage.FEEDBACK, Action.VERIFY: PhotoStage.VERIFICATION}


def photo_limits(settings: Settings) -> PhotoLimits:
    """The photo limits of the settings."""
    return PhotoLimits(
        max_bytes=settings.photo_max_bytes,
        max_count=settings.photo_max_count,
        max_pixels=settings.photo_max_pixels,
        max_dimension=settings.photo_max_dimension,
    )


def photo_store(settings: Settings) -> PhotoStore:
    """The media directory of the settings."""
    return PhotoStore(settings.media_dir)


def validation_failed(error: ValidationError) -> ValidationFailed:
    """A pydantic error as the API's 422, naming each field (never echoing a value)."""
    details = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ())) or "request"
        details.append({"field": location, "reason": item.get("msg", "")})
    message = "; ".join(f"{item['field']}: {item['reason']}" for item in details)
    return ValidationFailed(message, details=details)


def parse(model: type[BaseModelT], fields: Mapping[str, Any]) -> BaseModelT:
    """Validate fields into a schema, refusing with the API's 422."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as error:
        raise validation_failed(error) from None


def _with_location(fields: Mapping[str, Any], photos: Sequence[ProcessedPhoto]) -> dict[str, Any]:
    values = dict(fields)
    if values.get("lat") is None and values.get("lon") is None:
        for photo in photos:
            if photo.taken_lat is not None and photo.taken_lon is not None:
                values["lat"], values["lon"] = photo.taken_lat, photo.taken_lon
                break
        else:
            reason = _("give the location, or a photo that carries one")
            raise ValidationFailed(
                f"lat, lon: {reason}",
                details=[{"field": "lat", "reason": reason}, {"field": "lon", "reason": reason}],
            )
    return values


def file_case(
    session: Session,
    actor: Actor,
    *,
    fields: Mapping[str, Any],
    photos: Sequence[ProcessedPhoto],
    locator: Locator,
    store: PhotoStore,
    idempotency_key: str | None = None,
    source: CaseSource | None = None,
) -> service.CaseIntake:
    """File a case with its photos (see the module docstring for the order of checks)."""
    if actor.role not in service.INTAKE_ROLES:
        raise Forbidden(_("Your role may not file cases."))
    if idempotency_key is not None:
        key = service._check_idempotency_key(idempotency_key)
        earlier = repository.case_by_idempotency_key(session, actor.name, key or "")
        if earlier is not None:
            return service.CaseIntake(earlier, created=False)
    data = parse(CaseCreate, _with_location(fields, photos))
    intake = service.create_case(
        session,
        actor,
        data=data,
        locator=locator,
        idempotency_key=idempotency_key,
        source=source,
    )
    if intake.created and photos:
        attach_photos(session, intake.case, photos, stage=PhotoStage.REPORTED, store=store)
    return intake


def attach_photos(
    session: Session,
    case: Case,
    photos: Sequence[ProcessedPhoto],
    *,
    stage: PhotoStage,
    store: PhotoStore,
) -> None:
    """Store checked photos by content hash and record them on a case at a stage."""
    moment = utcnow()
    rows = []
    for photo in photos:
        store.put(session, photo)
        rows.append(
            {
                "case_id": case.id,
                "grid_code": case.grid_code,
                "stage": stage,
                "storage_path": photo.storage_path,
                "content_type": photo.content_type,
                "size_bytes": len(photo.data),
                "width": photo.width,
                "height": photo.height,
                "sha256": photo.sha256,
                "taken_lon": photo.taken_lon,
                "taken_lat": photo.taken_lat,
                "created_at": moment,
            }
        )
    repository.insert_photos(session, rows)


def apply_transition(
    session: Session,
    actor: Actor,
    *,
    case_ref: str,
    request: TransitionCreate,
    photos: Sequence[ProcessedPhoto],
    store: PhotoStore,
) -> Case:
    """A step of the loop, with photos where the step takes them (the department's
    feedback, the grid worker's verification)."""
    case = service.apply_transition(session, actor, case_ref=case_ref, request=request)
    if photos:
        stage = _PHOTO_STAGES.get(request.action)
        if stage is None:
            raise ValidationFailed.one(
                PHOTO_FIELD,
                _("not used by the action {action}").format(action=request.action.value),
            )
        attach_photos(session, case, photos, stage=stage, store=store)
    return case


# ============================================================================ reading


def photo_reads(session: Session, case: Case) -> list[PhotoRead]:
    """The photos of a case as the API lists them."""
    base = f"/api/v1/cases/{case.ref}/photos"
    return [
        PhotoRead(
            id=row.sha256,
            url=f"{base}/{row.sha256}",
            thumbnail_url=f"{base}/{row.sha256}/thumbnail",
            stage=row.stage,
            content_type=row.content_type,
            width=row.width,
            height=row.height,
        )
        for row in repository.photos_of(session, case.id)
    ]


@dataclass(frozen=True, slots=True)
class PhotoFile:
    """A stored file to send: its path, type, and an ETag (the content hash)."""

    path: Path
    content_type: str
    etag: str


def photo_file(
    session: Session,
    actor: Actor,
    *,
    case_ref: str,
    photo_id: str,
    store: PhotoStore,
    thumbnail: bool = False,
) -> PhotoFile:
    """A case's photo (or its thumbnail) if the actor's scope covers the case: 404 otherwise,
    exactly as for a photo that does not exist."""
    case = service.get_case(session, actor, case_ref=case_ref)
    row: CasePhoto | None = None
    if len(photo_id) == 64 and all(c in "0123456789abcdef" for c in photo_id):
        row = repository.photo_of_case(session, case.id, photo_id)
    if row is None:
        raise NotFound(_("The case has no such photo."))
    relative = thumbnail_path(row.storage_path) if thumbnail else row.storage_path
    path = store.path_of(relative)
    if not path.is_file():
        raise NotFound(_("The case has no such photo."))
    content_type = "image/jpeg" if thumbnail else row.content_type
    return PhotoFile(
        path=path,
        content_type=content_type,
        etag=f'"{row.sha256[:32]}{"-t" if thumbnail else ""}"',
    )


def reporter(
    session: Session,
    actor: Actor,
    *,
    case_ref: str,
    purpose: str | None,
    reveal: Sequence[str] = (),
) -> ReporterRead:
    """The reporter's contact of a case through the access gateway: masked by policy, for a
    purpose, audited (``reveal``: fields in clear where the purpose allows)."""
    case = repository.case_by_ref(session, case_ref) if len(case_ref) <= 24 else None
    grid_code = case.grid_code if case is not None else None
    contact = gateway.case_reporter(
        session,
        actor,
        case_ref=case_ref,
        grid_code=grid_code,
        contact={
            "name": case.reporter_contact_name if case else None,
            "phone": case.reporter_contact_phone if case else None,
        },
        purpose=purpose,
        reveal=reveal,
    )
    return ReporterRead(
        id=case_ref,
        purpose=contact.purpose,
        name=contact.fields.get("name"),
        phone=contact.fields.get("phone"),
        masked=list(contact.masked),
        revealable=list(contact.revealable),
    )


def shows_reporter(actor: Actor, case: Case, *, purpose: str) -> bool:
    """True when a page should read the case's reporter for the purpose: the case has a
    contact and the actor's role may see some of it. Nothing is read or logged here; a role
    that may never see it leaves no refusal in the access log on every visit."""
    if case.reporter_contact_name is None and case.reporter_contact_phone is None:
        return False
    return gateway.case_reporter_visible(actor, purpose=purpose)


def citizen_actor(reporter_key: str, *, request_id: str | None = None) -> Actor:
    """The actor of a resident on the public page: no account, no scope; ``reporter_key``
    ties a repeated submission of one form to its first case."""
    return Actor(
        name=f"citizen:{reporter_key}"[:64],
        role=CITIZEN_ROLE,
        kind="public",
        request_id=request_id,
    )


def may_file(actor: Actor) -> bool:
    """True when the actor's role may file cases on the staff intake page."""
    return actor.role in service.INTAKE_ROLES and actor.role not in (
        service.SYSTEM_ROLE,
        CITIZEN_ROLE,
    )


def is_grid_worker(actor: Actor) -> bool:
    """True for a grid worker (her map centres on her grid)."""
    return actor.role == Role.GRID_WORKER.value
