"""Who is acting: recorded on every change and checked by the access gateway."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Actor:
    """The person or system behind a call. ``name`` is an account username or API client id,
    never personal data of a resident. ``scopes`` are territorial code prefixes."""

    name: str
    role: str = "system"
    department: str | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    kind: str = "system"  # account / client / system
    account_id: int | None = None
    request_id: str | None = None
    client_address: str | None = None


SYSTEM = Actor(name="system", role="system")
