"""Our stylesheets parse as flat CSS: every rule closed before the next begins, rules nested
only in at-rules (@media, @supports). A rule left open swallows everything after it (a
merge once left the case pages' whole stylesheet inside a form rule, and browsers quietly
dropped it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from citygrid.kit.web import WEB_DIR

STYLESHEETS = sorted((WEB_DIR / "static" / "css").glob("*.css"))


def nesting_problems(text: str) -> list[str]:
    """Where a rule opens inside a rule that is not an at-rule, or a brace is unbalanced."""
    text = re.sub(r"/\*.*?\*/", lambda match: "\n" * match.group(0).count("\n"), text, flags=re.S)
    problems: list[str] = []
    stack: list[bool] = []  # True: an at-rule's block (may hold rules)
    prelude = ""
    line = 1
    for char in text:
        if char == "\n":
            line += 1
        if char == "{":
            if stack and not stack[-1]:
                problems.append(f"line {line}: {prelude.strip()!r} opens inside a rule")
            stack.append(prelude.strip().startswith("@"))
            prelude = ""
        elif char == "}":
            if not stack:
                problems.append(f"line {line}: '}}' closes nothing")
            else:
                stack.pop()
            prelude = ""
        elif char == ";":
            prelude = ""
        else:
            prelude += char
    if stack:
        problems.append(f"{len(stack)} block(s) still open at the end")
    return problems


def test_the_checker_finds_an_unclosed_rule() -> None:
    assert nesting_problems(".a { color: red; }\n@media (x) { .b { margin: 0; } }") == []
    assert nesting_problems(".a,\n.b {\n.c { color: red; }\n") != []


@pytest.mark.parametrize("path", STYLESHEETS, ids=lambda path: path.name)
def test_every_stylesheet_is_flat_css(path: Path) -> None:
    assert STYLESHEETS
    assert nesting_problems(path.read_text(encoding="utf-8")) == []
