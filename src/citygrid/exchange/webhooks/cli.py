"""``citygrid exchange webhooks ...``: subscriptions, their delivery log, replay, renewal of
a lease, and sending what is due now. Run as an administrator: every department's
subscriptions; a renewal acts for the subscription's own department (the service lets only
the owner renew).

Refused input exits with status 2 and a message naming the field; nothing is written then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError

app = typer.Typer(
    help="Webhook subscriptions of department systems: list, deliveries, replay, renew, send.",
    no_args_is_help=True,
)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
]


def _admin() -> Actor:
    return Actor(name="cli", role="admin", kind="system")


def _for_department(department: str) -> Actor:
    """The operator acting for one department, in the role its system acts in."""
    from citygrid.exchange.webhooks.service import CLIENT_ROLE

    return Actor(name="cli", role=CLIENT_ROLE, department=department, kind="system")


def _refuse(error: CitygridError, options: dict[str, str] | None = None) -> typer.Exit:
    """Print a refusal, naming each field as the command's option when it has one (exit 2)."""
    options = options or {}
    named = [item for item in error.details or () if item.get("field") in options]
    if not named:
        typer.echo(error.message, err=True)
    for item in named:
        typer.echo(f"{options[item['field']]}: {item.get('reason')}", err=True)
    return typer.Exit(2)


def _open(db: Path | None) -> str:
    from citygrid.exchange.cli import _open_database

    return _open_database(db)


@app.command("list")
def list_subscriptions(
    db: DbOption = None,
    department: Annotated[str | None, typer.Option(help="Only this department's")] = None,
) -> None:
    """Print the subscriptions: id, department, topic, state, deliveries per state, callback."""
    from citygrid.exchange.webhooks import service
    from citygrid.kit.db import unit_of_work

    url = _open(db)
    with unit_of_work(url) as session:
        for sub in service.list_subscriptions(session, _admin()):
            if department and sub.department != department:
                continue
            counts = ", ".join(f"{k} {v}" for k, v in sorted(sub.deliveries.items())) or "-"
            typer.echo(
                f"{sub.id}\t{sub.department}\t{sub.topic}\t{sub.state}\t{counts}\t"
                f"{sub.callback_url}"
            )


@app.command("deliveries")
def deliveries(
    subscription: Annotated[str, typer.Argument(help="The subscription's id (whs_...)")],
    db: DbOption = None,
    state: Annotated[str | None, typer.Option(help="pending, claimed, delivered or dead")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Print a subscription's delivery log, newest first: id, topic, person ref, state,
    attempts as status/latency/error."""
    from citygrid.exchange.webhooks import service
    from citygrid.kit.db import unit_of_work

    url = _open(db)
    try:
        with unit_of_work(url) as session:
            log = service.delivery_log(
                session,
                _admin(),
                ref=subscription,
                state=state,
                limit=limit,
            )
    except CitygridError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(2) from None
    for item in log:
        tries = " ".join(
            f"{a.status_code or '-'}/{a.latency_ms}ms{('/' + a.error) if a.error else ''}"
            for a in item.log
        )
        typer.echo(
            f"{item.id}\t{item.topic}\t{item.subject or '-'}\t{item.state}\t"
            f"{item.attempts}\t{tries}"
        )


@app.command("replay")
def replay(
    subscription: Annotated[str, typer.Argument(help="The subscription's id (whs_...)")],
    delivery: Annotated[
        list[str] | None, typer.Option("--delivery", help="A delivery id (repeatable)")
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="Every delivery in this state: dead or delivered")
    ] = None,
    db: DbOption = None,
) -> None:
    """Make deliveries due again (the worker sends them): named ones, or every dead one."""
    from citygrid.exchange.webhooks import service
    from citygrid.kit.db import unit_of_work

    url = _open(db)
    data = {"deliveries": delivery} if delivery else {"state": state or "dead"}
    try:
        with unit_of_work(url) as session:
            count = service.replay(
                session,
                _admin(),
                ref=subscription,
                data=data,
            )
    except CitygridError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{count} deliveries will be sent again")


@app.command("renew")
def renew(
    subscription: Annotated[str, typer.Argument(help="The subscription's id (whs_...)")],
    lease_seconds: Annotated[
        int | None,
        typer.Option(
            "--lease-seconds",
            help="How long the renewed subscription lasts from now: at least 3600, at most "
            "CITYGRID_WEBHOOK_LEASE_DAYS (the default).",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Renew a subscription's lease for its department: the callback is challenged again as
    at registration; only when it echoes is the subscription active until now + the lease
    (an expired or failed one too). Otherwise nothing changes and the exit status is 2."""
    from citygrid.exchange.webhooks import service
    from citygrid.kit.db import unit_of_work
    from citygrid.kit.settings import get_settings

    url = _open(db)
    settings = get_settings()
    data = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
    try:
        # The checks, then the challenge in a transaction of its own: a read held across
        # the challenge (seconds, maybe) could not become the write on SQLite.
        with unit_of_work(url) as session:
            owner = service.get_subscription(session, _admin(), ref=subscription).department
            actor = _for_department(owner)
            renewal = service.prepare_renewal(
                session, actor, ref=subscription, data=data, settings=settings
            )
        with unit_of_work(url) as session:
            renewed = service.renew(session, actor, renewal=renewal, settings=settings)
            expires_at = renewed.expires_at
    except CitygridError as error:
        raise _refuse(error, {"lease_seconds": "--lease-seconds"}) from None
    typer.echo(f"{subscription}\tactive until {expires_at:%Y-%m-%d %H:%M:%S} UTC")


@app.command("send")
def send(db: DbOption = None) -> None:
    """Send every webhook delivery due now, then exit (a worker does this continuously)."""
    from citygrid.exchange.tasks import worker_id
    from citygrid.exchange.webhooks import delivery
    from citygrid.kit.db import get_session_factory
    from citygrid.kit.settings import get_settings

    url = _open(db)
    with delivery.Sender(get_settings()) as sender:
        report = delivery.drain(get_session_factory(url), sender, worker_id=worker_id())
    typer.echo(
        f"claimed {report.claimed}, delivered {report.delivered}, "
        f"to retry {report.retried}, dead {report.dead}"
    )
    if report.retried or report.dead:
        raise typer.Exit(1)
