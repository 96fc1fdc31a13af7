"""The policy file: masks as documented, decisions per role, and a broken file refused."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import pytest

from citygrid.access.policy import POLICY_PATH, Level, Policy, PolicyError, default_policy

SEED_GRID = "440104001001002"


def test_masks_match_the_documented_examples() -> None:
    policy = default_policy()
    assert policy.mask("name", "张三丰") == "张**"
    assert policy.mask("id_number", "44010419900101123X") == "440104************"
    assert policy.mask("mobile", "13812341234") == "138****1234"
    assert policy.mask("birth_date", date(1990, 1, 1)) == "1990"
    assert policy.mask("landline", "020-83001234") == "********1234"
    assert policy.mask("address", "解放北路1号") == "***"
    assert policy.mask("criminal_record", True) is None
    assert policy.mask("name", None) is None


def test_a_grid_worker_sees_her_grid_masked_and_may_reveal_for_patrol() -> None:
    decision = default_policy().decide(
        role="grid_worker",
        department=None,
        scopes=(SEED_GRID,),
        grid_code=SEED_GRID,
        field_class="identity",
        purpose="patrol-update",
    )
    assert decision.in_scope
    assert decision.level is Level.MASKED
    assert decision.purpose_allowed and decision.may_reveal
    assert not decision.needs_consent


def test_a_neighbouring_grid_is_out_of_scope() -> None:
    decision = default_policy().decide(
        role="grid_worker",
        department=None,
        scopes=(SEED_GRID,),
        grid_code="440104001001003",
        field_class="identity",
        purpose="patrol-update",
    )
    assert not decision.in_scope


def test_criminal_records_are_hidden_from_all_but_public_security() -> None:
    policy = default_policy()
    for role in policy.roles:
        assert policy.grant(role).levels["criminal_record"] is Level.HIDDEN
    for department, grant in policy.departments.items():
        expected = Level.CLEAR if department == "public-security" else Level.HIDDEN
        assert grant.levels["criminal_record"] is expected


def test_allowance_review_needs_consent_and_belongs_to_civil_affairs() -> None:
    decision = default_policy().decide(
        role="department_officer",
        department="civil-affairs",
        scopes=("440104",),
        grid_code=SEED_GRID,
        field_class="identity",
        purpose="allowance-review",
    )
    assert decision.purpose_allowed and decision.may_reveal and decision.needs_consent


def test_a_purpose_outside_the_role_is_not_allowed() -> None:
    decision = default_policy().decide(
        role="grid_worker",
        department=None,
        scopes=(SEED_GRID,),
        grid_code=SEED_GRID,
        field_class="identity",
        purpose="public-security-duty",
    )
    assert not decision.purpose_allowed and not decision.may_reveal


def test_an_unknown_purpose_is_not_allowed() -> None:
    decision = default_policy().decide(
        role="grid_worker",
        department=None,
        scopes=(SEED_GRID,),
        grid_code=SEED_GRID,
        field_class="identity",
        purpose="curiosity",
    )
    assert not decision.purpose_allowed


def _document() -> dict:
    with POLICY_PATH.open("rb") as policy_file:
        return tomllib.load(policy_file)


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        (lambda d: d["masks"].pop("mobile"), "masks.mobile"),
        (lambda d: d["masks"].__setitem__("name", {"kind": "rot13"}), "masks.name"),
        (lambda d: d["roles"]["grid_worker"]["levels"].pop("contact"), "roles.grid_worker"),
        (
            lambda d: d["roles"]["grid_worker"]["reveal"].__setitem__(
                "criminal_record", ["patrol-update"]
            ),
            "roles.grid_worker.reveal.criminal_record",
        ),
        (lambda d: d["roles"]["grid_worker"]["purposes"].append("gossip"), "gossip"),
        (
            lambda d: d["purposes"]["statistics"].__setitem__("legal_basis", "whim"),
            "purposes.statistics",
        ),
    ],
)
def test_an_inconsistent_policy_is_refused_naming_the_key(breakage, named: str) -> None:
    document = _document()
    breakage(document)
    with pytest.raises(PolicyError, match=named.replace(".", r"\.")):
        Policy(document)


def test_a_policy_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "policy.toml"
    broken.write_text("version = [\n")
    from citygrid.access.policy import load_policy

    with pytest.raises(PolicyError, match="policy.toml"):
        load_policy(broken)
