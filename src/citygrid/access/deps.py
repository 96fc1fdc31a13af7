"""FastAPI dependencies for who is calling: ``CurrentActor`` for routes that need one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError


class NotAuthenticated(CitygridError):
    """No valid session or bearer token."""

    status_code = 401
    code = "not_authenticated"


def current_actor(request: Request) -> Actor:
    """The signed-in account or API client behind this request (401 when none)."""
    raise NotAuthenticated("sign in first")


CurrentActor = Annotated[Actor, Depends(current_actor)]
