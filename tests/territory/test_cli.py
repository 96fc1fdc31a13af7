"""``citygrid territory import`` and ``show``, as an operator types them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citygrid.cli import app
from citygrid.kit import i18n
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.territory import repository
from tests.fixtures_territory import MINI_CITY_PATH, mini_city_collection
from tests.territory.builders import find

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty SQLite file path; the environment the CLI changes is restored afterwards."""
    monkeypatch.setenv("CITYGRID_DATABASE_URL", "sqlite:///unused.sqlite3")
    monkeypatch.setenv("CITYGRID_DEFAULT_LOCALE", "en")
    yield tmp_path / "city.sqlite3"
    dispose_engines()
    i18n.set_locale(i18n.DEFAULT_LOCALE)


@pytest.fixture
def migrated(database: Path) -> Path:
    result = runner.invoke(app, ["db", "upgrade", "--db", str(database)])
    assert result.exit_code == 0, result.output
    return database


def unit_count(database: Path) -> int:
    with unit_of_work(f"sqlite:///{database}") as session:
        return repository.count_units(session)


def test_import_before_the_schema_exists_says_what_to_run(database: Path) -> None:
    result = runner.invoke(app, ["territory", "import", str(MINI_CITY_PATH), "--db", str(database)])

    assert result.exit_code == 2
    assert "citygrid db upgrade" in result.output


def test_import_then_import_again(migrated: Path) -> None:
    first = runner.invoke(app, ["territory", "import", str(MINI_CITY_PATH), "--db", str(migrated)])
    second = runner.invoke(app, ["territory", "import", str(MINI_CITY_PATH), "--db", str(migrated)])

    assert first.exit_code == 0, first.output
    assert "created 18, updated 0, unchanged 0; territory revision 1" in first.output
    assert second.exit_code == 0, second.output
    assert "created 0, updated 0, unchanged 18; territory revision 1" in second.output
    assert unit_count(migrated) == 18


def test_a_bad_file_lists_its_errors_and_changes_nothing(migrated: Path, tmp_path: Path) -> None:
    collection = mini_city_collection()
    bow_tie = [[113.266, 23.125], [113.267, 23.126], [113.267, 23.125], [113.266, 23.126]]
    find(collection, "440104001001002")["geometry"]["coordinates"] = [[*bow_tie, bow_tie[0]]]
    del find(collection, "440104002001001")["properties"]["name_zh"]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(collection), encoding="utf-8")

    result = runner.invoke(app, ["territory", "import", str(bad), "--db", str(migrated)])

    assert result.exit_code == 2
    assert "2 errors" in result.output
    assert "feature 6  code 440104001001002  geometry: invalid polygon: Self-intersection" in (
        result.output
    )
    assert "code 440104002001001  name_zh: missing" in result.output
    assert unit_count(migrated) == 0


def test_a_file_that_is_not_json_is_refused(migrated: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [}', encoding="utf-8")

    result = runner.invoke(app, ["territory", "import", str(broken), "--db", str(migrated)])

    assert result.exit_code == 2
    assert "file: not valid JSON" in result.output
    assert unit_count(migrated) == 0


def test_a_missing_file_is_refused(migrated: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.geojson"
    result = runner.invoke(app, ["territory", "import", str(missing), "--db", str(migrated)])

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_show_prints_the_unit_and_its_children(migrated: Path) -> None:
    runner.invoke(app, ["territory", "import", str(MINI_CITY_PATH), "--db", str(migrated)])

    result = runner.invoke(app, ["territory", "show", "440104002", "--db", str(migrated)])

    assert result.exit_code == 0, result.output
    assert "440104002  street  人民街道  Renmin Street" in result.output
    assert "440100 广州市 > 440104 越秀区" in result.output
    assert "440104002001  community  光塔社区  Guangta Community" in result.output
    assert "440104002002  community  净慧社区  Jinghui Community" in result.output


def test_show_an_unknown_or_malformed_code(migrated: Path) -> None:
    unknown = runner.invoke(app, ["territory", "show", "440104009", "--db", str(migrated)])
    malformed = runner.invoke(app, ["territory", "show", "4401", "--db", str(migrated)])

    assert unknown.exit_code == 1
    assert "440104009" in unknown.output
    assert malformed.exit_code == 2
    assert "6, 9, 12 or 15 digits" in malformed.output
