"""The seed's tile story, reproducible (``citygrid demo story tile``): grid worker zhangsijun
finds a broken floor tile near Jiefang North Road in her grid, photographs it and files it;
the command centre's stream has it at once; the dispatcher registers and dispatches it to
housing and construction with its working-time deadline; the department accepts it and
answers; zhangsijun verifies on site, the case closes on time and the dispatcher evaluates
it; then the evaluation of the department over the last 30 days.

Every step goes through the real services, each in its own committed unit of work, as the
actor whose step it is; the photo goes through the real photo path (checked, re-encoded
without metadata, thumbnail, stored by hash under the media directory). What the stream
shows is read back from ``case_events``, the log the live feed reads.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy.orm import Session, sessionmaker

from citygrid.cases import evaluation, intake, service
from citygrid.cases import repository as case_repository
from citygrid.cases.models import Action, CaseState
from citygrid.cases.photos import process
from citygrid.cases.schemas import TransitionCreate
from citygrid.demo import repository
from citygrid.demo.case_feed import DISPATCHER_ACTOR, department_actor, grid_worker
from citygrid.demo.seed import SEED_GRID_CODE
from citygrid.kit.errors import NotFound
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.territory.locator import Locator

CATEGORY = "C0201"
ADDRESS = "解放北路128号附近"
DESCRIPTION = "人行道地砖破损松动，约1平方米，有绊倒风险。"


@dataclass
class StoryStep:
    """One step as the story prints it."""

    at: datetime
    seconds: float
    text: str


@dataclass
class TileStory:
    """What the story did and saw."""

    case_ref: str = ""
    department: str = ""
    steps: list[StoryStep] = field(default_factory=list)
    state: str = ""
    evaluation: evaluation.EvaluationRead | None = None

    @property
    def complete(self) -> bool:
        """True when the case ended evaluated."""
        return self.state == CaseState.EVALUATED.value


def _officer(department: str) -> str:
    name = department_actor(department).name
    return name if name == department else f"{name} ({department})"


def tile_photo() -> bytes:
    """A generated photo of a cracked paving tile (JPEG)."""
    image = Image.new("RGB", (800, 600), (150, 150, 145))
    draw = ImageDraw.Draw(image)
    for x in range(0, 800, 100):
        draw.line([(x, 0), (x, 600)], fill=(90, 90, 90), width=4)
    for y in range(0, 600, 100):
        draw.line([(0, y), (800, y)], fill=(90, 90, 90), width=4)
    draw.polygon([(300, 200), (400, 200), (400, 300), (300, 300)], fill=(70, 65, 60))
    draw.line([(300, 210), (350, 260), (330, 300), (400, 240)], fill=(30, 30, 30), width=6)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def run_tile_story(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> TileStory:
    """Take the tile through the whole loop, printing nothing (the CLI prints the steps)."""
    story = TileStory()
    started = clock()

    def step(text: str) -> None:
        story.steps.append(StoryStep(utcnow(), clock() - started, text))

    zhang = grid_worker(SEED_GRID_CODE)
    with factory() as session:
        bounds = repository.grid_bounds(session, SEED_GRID_CODE)
        if bounds is None:
            raise NotFound(_("The demo has no seed grid."))
        min_lon, min_lat, max_lon, max_lat = bounds
        last_event = case_repository.max_event_id(session)
        photo = process(tile_photo(), intake.photo_limits(settings))
        filed = intake.file_case(
            session,
            zhang,
            fields={
                "category": CATEGORY,
                "description": DESCRIPTION,
                "priority": "normal",
                "lon": round(min_lon + 0.37 * (max_lon - min_lon), 6),
                "lat": round(min_lat + 0.61 * (max_lat - min_lat), 6),
                "address": ADDRESS,
            },
            photos=[photo],
            locator=Locator.from_session(session),
            store=intake.photo_store(settings),
        )
        case = filed.case
        story.case_ref = case.ref
        session.commit()
        step(
            f"{zhang.name} reported case {case.ref}: {case.category} floor tiles, "
            f"grid {case.grid_code}, {case.address}, 1 photo"
        )
    with factory() as session:
        events = [
            event
            for event in case_repository.events_after(session, after_id=last_event, limit=1000)
            if event.case_id == case.id
        ]
        names = ", ".join(f"#{event.id} {event.name}" for event in events) or "nothing"
        step(f"the command centre's stream has it: {names}")

    def act(actor_name: str, request: TransitionCreate, describe: Callable[[Any], str]) -> None:
        with factory() as session:
            actor = {
                "dispatcher": DISPATCHER_ACTOR,
                "department": department_actor(story.department),
                "worker": zhang,
            }[actor_name]
            changed = service.apply_transition(
                session, actor, case_ref=story.case_ref, request=request
            )
            text = describe(changed)
            story.state = changed.state.value
            story.department = changed.department
            session.commit()
        step(text)

    story.department = case.department
    act(
        "dispatcher",
        TransitionCreate(action=Action.REGISTER, note="符合立案标准"),
        lambda c: f"{DISPATCHER_ACTOR.name} registered it (state {c.state.value})",
    )
    act(
        "dispatcher",
        TransitionCreate(action=Action.DISPATCH),
        lambda c: (
            f"{DISPATCHER_ACTOR.name} dispatched it to {c.department}, "
            f"deadline {c.deadline_at:%Y-%m-%d %H:%M} UTC (working time)"
        ),
    )
    act(
        "department",
        TransitionCreate(action=Action.ACCEPT),
        lambda c: f"{_officer(c.department)} accepted it",
    )
    act(
        "department",
        TransitionCreate(action=Action.FEEDBACK, note="已更换破损地砖，铺装平整牢固。"),
        lambda c: (
            f"{_officer(c.department)} answered: handled after "
            f"{c.handling_hours or 0:.2f} working hours"
        ),
    )
    act(
        "worker",
        TransitionCreate(action=Action.VERIFY, result="pass"),
        lambda c: (
            f"{zhang.name} verified on site: pass, closed "
            + ("on time" if c.closed_on_time else "late")
        ),
    )
    act(
        "dispatcher",
        TransitionCreate(action=Action.EVALUATE, score=5),
        lambda c: f"{DISPATCHER_ACTOR.name} evaluated it: satisfaction {c.satisfaction}/5",
    )
    with factory() as session:
        now = utcnow()
        story.evaluation = evaluation.evaluate(
            session,
            department_actor(story.department),
            group_by="department",
            period=evaluation.parse_period(None, None, now=now),
            now=now,
        )
    step(f"the evaluation of {story.department} over the last 30 days")
    return story
