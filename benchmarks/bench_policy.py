"""One policy decision (role x scope x field class x purpose): citygrid's compiled policy
against pycasbin enforcing the equivalent RBAC-with-domains model, side by side in one run.

    .venv/bin/python -m benchmarks.bench_policy

Target (issue: access gateway): at least 100 times faster than pycasbin.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import casbin

from citygrid.access.policy import Level, default_policy

MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.obj == p.obj && r.act == p.act
"""

USERS = 200
DECISIONS = 20_000


def build_requests(rng: random.Random) -> list[tuple[str, str, tuple[str, ...], str, str, str]]:
    policy = default_policy()
    roles = ["grid_worker", "community_official", "street_official", "district_official"]
    classes = list(policy.field_classes)
    purposes = list(policy.purposes)
    requests = []
    for _ in range(DECISIONS):
        user = rng.randrange(USERS)
        role = roles[user % len(roles)]
        scope = f"440104{user % 18 + 1:03d}"
        # Half of the questions are about the user's own street, as in real use.
        street = user % 18 + 1 if rng.random() < 0.5 else rng.randrange(1, 19)
        grid = f"440104{street:03d}{rng.randrange(1, 10):03d}{rng.randrange(1, 30):03d}"
        requests.append(
            (f"user{user}", role, (scope,), grid, rng.choice(classes), rng.choice(purposes))
        )
    return requests


def casbin_enforcer(tmp: Path) -> casbin.Enforcer:
    """The same rules in casbin: users hold roles in scope domains (prefix patterns), roles
    hold (visible class, allowed purpose) permissions."""
    policy = default_policy()
    lines = []
    for user in range(USERS):
        role = ["grid_worker", "community_official", "street_official", "district_official"][
            user % 4
        ]
        lines.append(f"g, user{user}, {role}, 440104{user % 18 + 1:03d}*")
        grant = policy.grant(role)
        for class_name, level in grant.levels.items():
            if level is Level.HIDDEN:
                continue
            for purpose in grant.purposes:
                lines.append(f"p, {role}, *, {class_name}, {purpose}")
    (tmp / "model.conf").write_text(MODEL)
    (tmp / "policy.csv").write_text("\n".join(sorted(set(lines))) + "\n")
    enforcer = casbin.Enforcer(str(tmp / "model.conf"), str(tmp / "policy.csv"))
    # Scope domains are code prefixes: "440104001*" holds every grid code under that street.
    enforcer.add_named_domain_matching_func("g", casbin.util.key_match)
    return enforcer


def main() -> None:
    rng = random.Random(6962)
    requests = build_requests(rng)
    policy = default_policy()

    start = time.perf_counter()
    ours = 0
    for _user, role, scopes, grid, class_name, purpose in requests:
        decision = policy.decide(
            role=role,
            department=None,
            scopes=scopes,
            grid_code=grid,
            field_class=class_name,
            purpose=purpose,
        )
        ours += (
            decision.in_scope and decision.purpose_allowed and decision.level is not Level.HIDDEN
        )
    ours_seconds = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        enforcer = casbin_enforcer(Path(tmp))
        start = time.perf_counter()
        theirs = 0
        for user, _role, _scopes, grid, class_name, purpose in requests:
            theirs += bool(enforcer.enforce(user, grid, class_name, purpose))
        casbin_seconds = time.perf_counter() - start

    assert ours == theirs, f"the two disagree: {ours} vs {theirs} allowed"
    per_ours = ours_seconds / DECISIONS * 1e6
    per_casbin = casbin_seconds / DECISIONS * 1e6
    print(f"decisions: {DECISIONS:,} ({ours:,} allowed by both)")
    print(f"citygrid policy: {per_ours:.2f} us/decision")
    print(f"pycasbin:        {per_casbin:.2f} us/decision")
    print(f"ratio: citygrid is {per_casbin / per_ours:,.0f}x faster")


if __name__ == "__main__":
    main()
