"""The administrator's catalogue pages: ``/admin/catalogue`` lists the major and minor
classes as they apply in the city or a district; ``/admin/catalogue/{code}`` edits one
class's override there (department, deadlines per priority, criteria) and shows its
history. Thin: the rules are in ``citygrid.cases.catalogue_admin``. Only administrators see
these pages (403 for anyone else signed in)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from citygrid.access.deps import CurrentActor
from citygrid.cases import catalogue_admin
from citygrid.cases.departments import department_label
from citygrid.cases.models import Priority
from citygrid.cases.schemas import OverrideFields
from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.web import SessionDep, render
from citygrid.registry.schemas import DEPARTMENT_SLUGS
from citygrid.territory import service as territory
from citygrid.territory.models import Level

router = APIRouter(include_in_schema=False)

CodeParam = Annotated[str | None, Query(max_length=6)]
FormText = Annotated[str, Form(max_length=2000)]


def priority_labels() -> dict[str, str]:
    """The priorities' names in the current language."""
    return {"urgent": _("Urgent"), "high": _("High"), "normal": _("Normal")}


def _error_page(request: Request, error: CitygridError) -> Response:
    return render(
        request,
        "error.html",
        status_code=error.status_code,
        error=error.to_dict()["error"],
        status=error.status_code,
        show_message=True,
    )


def _territories(session: Session) -> list[tuple[str, str]]:
    units = territory.units_at(session, levels=(Level.CITY, Level.DISTRICT))
    return [(unit.code, localised(unit.name_zh, unit.name_en)) for unit in units]


def _chosen(territories: list[tuple[str, str]], code: str | None) -> str:
    codes = [item[0] for item in territories]
    if code in codes:
        return str(code)
    return codes[0] if codes else ""


def _departments() -> list[tuple[str, str]]:
    return sorted(((slug, department_label(slug)) for slug in DEPARTMENT_SLUGS), key=lambda x: x[1])


@router.get("/admin/catalogue", response_class=HTMLResponse)
def catalogue_page(
    request: Request, session: SessionDep, actor: CurrentActor, district_code: CodeParam = None
) -> Response:
    """Every class as it applies in the chosen city or district, overridden fields marked."""
    try:
        catalogue_admin.require_admin(actor)
    except CitygridError as error:
        return _error_page(request, error)
    territories = _territories(session)
    chosen = _chosen(territories, district_code)
    view = catalogue_admin.catalogue_view(session, actor, district_code=chosen or None)
    return render(
        request,
        "cases/catalogue.html",
        view=view,
        territories=territories,
        chosen=chosen,
        department_label=department_label,
        priority_labels=priority_labels(),
    )


def _edit_context(
    session: Session, actor: Actor, code: str, chosen: str, territories: list[tuple[str, str]]
) -> dict[str, Any]:
    effective = catalogue_admin.class_view(
        session, actor, category_code=code, district_code=chosen or None
    )
    row = None
    for item in catalogue_admin.list_overrides(session, actor):
        if item.category == code and item.district_code == chosen:
            row = item
    history = catalogue_admin.history(session, actor, category_code=code)
    return {
        "item": effective,
        "override": catalogue_admin.override_read(row) if row is not None else None,
        "history": [catalogue_admin.change_read(change) for change in history],
        "territories": territories,
        "territory_names": dict(territories),
        "chosen": chosen,
        "departments": _departments(),
        "department_label": department_label,
        "priority_labels": priority_labels(),
        "criterion_labels": {
            "register_zh": _("Registration criterion (Chinese)"),
            "register_en": _("Registration criterion (English)"),
            "close_zh": _("Closing criterion (Chinese)"),
            "close_en": _("Closing criterion (English)"),
        },
    }


@router.get("/admin/catalogue/{code}", response_class=HTMLResponse)
def edit_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    code: str,
    district_code: CodeParam = None,
    saved: Annotated[str | None, Query(max_length=8)] = None,
) -> Response:
    """The override form of one class for the chosen city or district, and its history."""
    try:
        catalogue_admin.require_admin(actor)
        territories = _territories(session)
        chosen = _chosen(territories, district_code)
        context = _edit_context(session, actor, code, chosen, territories)
    except CitygridError as error:
        return _error_page(request, error)
    form = _form_of(context["override"])
    return render(
        request, "cases/catalogue_edit.html", errors=[], form=form, saved=saved, **context
    )


def _form_of(override: Any) -> dict[str, str]:
    form = {name: "" for name in _FORM_FIELDS}
    if override is not None:
        form["department"] = override.department or ""
        for priority, text in override.deadlines.items():
            form[f"deadline_{priority.value}"] = text
        for name in catalogue_admin.CRITERIA:
            form[name] = getattr(override, name) or ""
    return form


_FORM_FIELDS = (
    "department",
    "deadline_urgent",
    "deadline_high",
    "deadline_normal",
    *catalogue_admin.CRITERIA,
)


@router.post("/admin/catalogue/{code}", response_class=HTMLResponse)
def save_override(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    code: str,
    district_code: Annotated[str, Form(max_length=6)],
    department: FormText = "",
    deadline_urgent: FormText = "",
    deadline_high: FormText = "",
    deadline_normal: FormText = "",
    register_zh: FormText = "",
    register_en: FormText = "",
    close_zh: FormText = "",
    close_en: FormText = "",
) -> Response:
    """Save the override from the form (empty fields keep the value below); 422 with the
    form and the reasons on bad input, nothing saved."""
    form = {
        "department": department.strip(),
        "deadline_urgent": deadline_urgent.strip(),
        "deadline_high": deadline_high.strip(),
        "deadline_normal": deadline_normal.strip(),
        "register_zh": register_zh.strip(),
        "register_en": register_en.strip(),
        "close_zh": close_zh.strip(),
        "close_en": close_en.strip(),
    }
    deadlines = {
        priority.value: form[f"deadline_{priority.value}"]
        for priority in Priority
        if form[f"deadline_{priority.value}"]
    }
    try:
        catalogue_admin.require_admin(actor)
        try:
            data = OverrideFields(
                department=form["department"] or None,
                deadlines=deadlines or None,
                **{name: form[name] or None for name in catalogue_admin.CRITERIA},
            )
        except ValidationError as exc:
            details = [
                {"field": ".".join(str(part) for part in error["loc"]), "reason": error["msg"]}
                for error in exc.errors()
            ]
            raise ValidationFailed(
                _("Some of the input was not accepted"), details=details
            ) from None
        catalogue_admin.set_override(
            session, actor, category_code=code, district_code=district_code, data=data
        )
    except ValidationFailed as error:
        # Every check runs before the first write: nothing was changed.
        try:
            territories = _territories(session)
            context = _edit_context(session, actor, code, district_code, territories)
        except CitygridError as other:
            return _error_page(request, other)
        return render(
            request,
            "cases/catalogue_edit.html",
            status_code=422,
            errors=error.details or [],
            form=form,
            saved=None,
            **context,
        )
    except CitygridError as error:
        return _error_page(request, error)
    query = urlencode({"district_code": district_code, "saved": "1"})
    return RedirectResponse(f"/admin/catalogue/{code}?{query}", status_code=303)


@router.post("/admin/catalogue/{code}/remove")
def remove_override(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    code: str,
    district_code: Annotated[str, Form(max_length=6)],
) -> Response:
    """Remove the override of the class in the chosen city or district."""
    try:
        catalogue_admin.remove_override(
            session, actor, category_code=code, district_code=district_code
        )
    except CitygridError as error:
        return _error_page(request, error)
    query = urlencode({"district_code": district_code, "saved": "1"})
    return RedirectResponse(f"/admin/catalogue/{code}?{query}", status_code=303)
