"""The web shell as a visitor meets it: the map page, a grid page, errors, in both languages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.kit.settings import Settings
from citygrid.kit.web import get_session
from tests.fixtures_territory import MINI_GRID_CODES
from tests.web.city import EMPTY_GRID, EXPECTED, FULL_GRID


class PageParser(HTMLParser):
    """Collects what the checks below look at: tags with attributes, scripts, text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)
        elif data.strip():
            self.text.append(data.strip())

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def text_of(html: str) -> str:
    return " ".join(parse(html).text)


# ------------------------------------------------------------------------ the map page


def test_the_map_speaks_chinese_by_default(city: Session, visitor: TestClient) -> None:
    response = visitor.get("/")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    assert response.headers["Content-Language"] == "zh-CN"
    text = text_of(response.text)
    assert "城市网格" in text
    assert "地图" in text
    assert "越秀区地图" in text
    assert "北京街道" in text and "人民街道" in text
    assert "Map" not in text


def test_the_map_speaks_english_to_an_english_browser(city: Session, visitor: TestClient) -> None:
    response = visitor.get("/map", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in response.text
    text = text_of(response.text)
    assert "Map of Yuexiu District" in text
    assert "Beijing Street" in text
    assert "Streets and grids" in text
    assert "地图" not in text


def test_the_chosen_language_beats_the_browser_language(city: Session, visitor: TestClient) -> None:
    visitor.cookies.set("citygrid_lang", "en")
    response = visitor.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="en">' in response.text
    assert "Accept-Language" in response.headers["Vary"]


def test_the_map_lists_every_street_and_grid_without_javascript(
    city: Session, visitor: TestClient
) -> None:
    page = parse(visitor.get("/").text)
    links = {attrs.get("href") for attrs in page.find("a")}
    for grid_code in MINI_GRID_CODES:
        assert f"/grids/{grid_code}" in links
    assert "?street=440104001#unit-440104001" in links
    assert page.find("details")  # streets fold open natively, no script needed


def test_a_street_link_opens_that_street(city: Session, visitor: TestClient) -> None:
    html = visitor.get("/map?street=440104002").text
    assert '<details id="unit-440104002" open>' in html
    assert '<details id="unit-440104001">' in html


def test_the_map_element_carries_its_configuration(city: Session, visitor: TestClient) -> None:
    page = parse(visitor.get("/").text)
    (map_element,) = [attrs for attrs in page.find("div") if attrs.get("id") == "map"]
    assert map_element["data-district"] == "440104"
    assert map_element["data-api"] == "/api/v1"
    assert "data-tile-url" not in map_element
    labels = json.loads(map_element["data-labels"] or "")
    assert labels["residents"] == "居民"
    assert labels["open"] == "打开网格页面"


def test_a_tile_url_in_the_settings_reaches_the_map_and_the_csp(
    city: Session, settings: Settings
) -> None:
    from citygrid.app import create_app

    tiles = "https://{s}.tiles.example.gov.cn/{z}/{x}/{y}.png"
    app = create_app(settings.model_copy(update={"map_tile_url": tiles}))

    def _test_session() -> Iterator[Session]:
        yield city

    app.dependency_overrides[get_session] = _test_session
    with TestClient(app, headers={"Accept": "text/html"}) as client:
        response = client.get("/")
    (map_element,) = [
        attrs for attrs in parse(response.text).find("div") if attrs.get("id") == "map"
    ]
    assert map_element["data-tile-url"] == tiles
    assert (
        "img-src 'self' data: blob: https://*.tiles.example.gov.cn;"
        in (response.headers["Content-Security-Policy"])
    )


def test_the_map_loads_leaflet_and_our_module_from_this_server(
    city: Session, visitor: TestClient
) -> None:
    html = visitor.get("/").text
    page = parse(html)
    scripts = [attrs.get("src") for attrs in page.find("script")]
    assert scripts == ["/vendor/leaflet/leaflet.js", "/static/js/map.js?v=0.1.0"]
    assert {"type": "module", "src": "/static/js/map.js?v=0.1.0"}.items() <= page.find("script")[
        1
    ].items()
    styles = [attrs.get("href") for attrs in page.find("link") if attrs.get("rel") == "stylesheet"]
    assert "/vendor/leaflet/leaflet.css" in styles
    for asset in scripts + styles:
        assert asset and asset.startswith("/") and not asset.startswith("//")
        assert visitor.get(asset).status_code == 200
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]", html), "an external URL"


def test_pages_obey_the_content_security_policy(city: Session, visitor: TestClient) -> None:
    for path in ("/", f"/grids/{FULL_GRID}", "/no-such-page"):
        response = visitor.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp
        page = parse(response.text)
        assert page.inline_scripts == [], path
        assert page.find("style") == [], path
        for tag, attrs in page.tags:
            assert "style" not in attrs, (path, tag)
            assert not any(name.startswith("on") for name in attrs), (path, tag)


def test_the_layout_is_accessible(city: Session, visitor: TestClient) -> None:
    html = visitor.get("/").text
    page = parse(html)
    assert page.find("a")[0]["href"] == "#main"  # the skip link comes first
    assert [attrs for attrs in page.find("main") if attrs.get("id") == "main"]
    assert page.find("header") and page.find("footer")
    navs = [attrs.get("aria-label") for attrs in page.find("nav")]
    assert navs == ["主导航", "语言"]
    switch = {attrs.get("href"): attrs for attrs in page.find("a") if attrs.get("hreflang")}
    assert switch["/lang/en?next=/"]["lang"] == "en"
    assert switch["/lang/zh_CN?next=/"]["aria-current"] == "true"
    for image in page.find("img"):
        assert "alt" in image


def test_an_empty_database_still_gives_a_map_page(visitor: TestClient) -> None:
    response = visitor.get("/")
    assert response.status_code == 200
    assert "尚未导入区划" in text_of(response.text)


# ------------------------------------------------------------------- the language switch


def test_the_language_switch_remembers_the_choice(city: Session, visitor: TestClient) -> None:
    back_to = f"/grids/{FULL_GRID}"
    response = visitor.get("/lang/en", params={"next": back_to}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"] == back_to
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("citygrid_lang=en;")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    page = visitor.get(back_to)  # the client kept the cookie
    assert '<html lang="en">' in page.text
    assert "What the grid holds" in text_of(page.text)
    visitor.get("/lang/zh_CN", params={"next": back_to})
    assert "网格概况" in text_of(visitor.get(back_to).text)


def test_the_language_switch_keeps_the_query_of_the_page(
    city: Session, visitor: TestClient
) -> None:
    html = visitor.get("/map?street=440104002").text
    assert 'href="/lang/en?next=/map%3Fstreet%3D440104002"' in html
    response = visitor.get("/lang/en?next=/map%3Fstreet%3D440104002", follow_redirects=False)
    assert response.headers["Location"] == "/map?street=440104002"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_the_language_switch_never_sends_anyone_elsewhere(visitor: TestClient, target: str) -> None:
    response = visitor.get("/lang/en", params={"next": target}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_an_unknown_language_is_not_found(visitor: TestClient) -> None:
    response = visitor.get("/lang/fr?next=/", follow_redirects=False)
    assert response.status_code == 404
    assert "set-cookie" not in response.headers
    assert "页面不存在" in text_of(response.text)


# ---------------------------------------------------------------------- the grid page


def test_the_grid_page_shows_what_the_grid_holds(city: Session, visitor: TestClient) -> None:
    html = visitor.get(f"/grids/{FULL_GRID}").text
    for key, count in EXPECTED.items():
        assert re.search(
            rf'<tr data-count="{key}">\s*<th scope="row">[^<]+</th>\s*'
            rf'<td class="num">{count}</td>',
            html,
        ), key
    text = text_of(html)
    assert "府前社区第1网格" in text
    assert "楼栋" in text and "住户" in text and "居民" in text
    assert "井盖" in text and "消火栓" in text and "公用设施" in text


def test_the_grid_page_shows_where_the_grid_is(city: Session, visitor: TestClient) -> None:
    page = parse(visitor.get(f"/grids/{FULL_GRID}").text)
    breadcrumb = [
        attrs.get("href") for attrs in page.find("a") if "unit-" in (attrs.get("href") or "")
    ]
    assert breadcrumb == [
        "/map?street=440104001#unit-440104001",
        "/map?street=440104001#unit-440104001001",
    ]
    html = visitor.get(f"/grids/{FULL_GRID}").text
    assert '<li aria-current="page">府前社区第1网格</li>' in html
    assert '<a href="/map">越秀区</a>' in html


def test_the_grid_page_in_english(city: Session, visitor: TestClient) -> None:
    html = visitor.get(f"/grids/{FULL_GRID}", headers={"Accept-Language": "en"}).text
    assert '<html lang="en">' in html
    text = text_of(html)
    assert "Fuqian Community Grid 1" in text
    assert "Beijing Street" in text
    assert "Manhole cover" in text and "Fire hydrant" in text
    assert "Housing units" in text


def test_the_grid_page_draws_its_grid(city: Session, visitor: TestClient) -> None:
    page = parse(visitor.get(f"/grids/{FULL_GRID}").text)
    (map_element,) = [attrs for attrs in page.find("div") if attrs.get("id") == "map"]
    assert map_element["data-grid"] == FULL_GRID
    assert map_element["data-context"] == FULL_GRID[:12]  # its community, drawn faintly
    assert "data-district" not in map_element


def test_the_grid_page_shows_no_personal_data(city: Session, visitor: TestClient) -> None:
    html = visitor.get(f"/grids/{FULL_GRID}").text
    assert "测试居民" not in html  # the residents' name
    assert not re.search(r"\d{17}[\dX]", html)  # an ID number
    assert "府前路" not in html  # a building's address


def test_an_empty_grid_shows_zeros(city: Session, visitor: TestClient) -> None:
    html = visitor.get(f"/grids/{EMPTY_GRID}").text
    assert re.search(
        r'<tr data-count="residents">\s*<th[^>]*>[^<]+</th>\s*<td class="num">0</td>', html
    )
    assert "此网格尚未登记部件" in text_of(html)


@pytest.mark.parametrize(
    "code", ["440104009009009", "440104001001", "not-a-grid", "4401040010010011"]
)
def test_an_unknown_grid_is_the_not_found_page(
    city: Session, visitor: TestClient, code: str
) -> None:
    response = visitor.get(f"/grids/{code}")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "页面不存在" in text_of(response.text)
    assert '<a class="button" href="/">' in response.text


def test_the_not_found_page_in_english(visitor: TestClient) -> None:
    response = visitor.get("/nowhere", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    text = text_of(response.text)
    assert "Page not found" in text
    assert "Not Found" not in text  # the bare HTTP phrase adds nothing
    assert "not_found" in text


def test_an_unexpected_error_is_a_page_without_details(app: FastAPI) -> None:
    def broken() -> None:
        raise RuntimeError("secret detail 440104198001110011")

    app.add_api_route("/broken-page", broken)
    with TestClient(app, raise_server_exceptions=False, headers={"Accept": "text/html"}) as client:
        response = client.get("/broken-page")
    assert response.status_code == 500
    assert "系统出现错误" in text_of(response.text)
    assert "secret" not in response.text and "440104198001110011" not in response.text


def test_the_api_still_answers_json_for_errors(city: Session, visitor: TestClient) -> None:
    response = visitor.get("/api/v1/grids/440104009009009/summary")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --------------------------------------------------- what map.js relies on from the API


def test_the_geojson_the_map_draws(city: Session, client: TestClient) -> None:
    base = "/api/v1/territory/440104/grids.geojson"
    grids = client.get(base).json()["features"]
    assert sorted(feature["properties"]["code"] for feature in grids) == list(MINI_GRID_CODES)
    full = next(feature for feature in grids if feature["properties"]["code"] == FULL_GRID)
    for key, count in EXPECTED.items():
        assert full["properties"][key] == count, key
    assert {"name_zh", "name_en"} <= full["properties"].keys()
    assert len(client.get(base, params={"level": "street"}).json()["features"]) == 2
    assert len(client.get(base, params={"level": "community"}).json()["features"]) == 4
    own = client.get(f"/api/v1/territory/{FULL_GRID}/grids.geojson").json()["features"]
    assert [feature["properties"]["code"] for feature in own] == [FULL_GRID]


def test_the_static_assets_are_served(visitor: TestClient) -> None:
    script = visitor.get("/static/js/map.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "export async function initMap" in script.text
    assert visitor.get("/static/css/app.css").status_code == 200
    assert visitor.get("/static/img/logo.svg").status_code == 200
    assert visitor.get("/vendor/leaflet/images/marker-icon.png").status_code == 200
