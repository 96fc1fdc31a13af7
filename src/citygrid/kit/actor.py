"""Who is acting: recorded on every change and (later) checked by the access gateway."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Actor:
    """The person or system behind a call. ``name`` is an account or client id, never
    personal data of a resident."""

    name: str
    role: str = "system"
    department: str | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)


SYSTEM = Actor(name="system", role="system")
