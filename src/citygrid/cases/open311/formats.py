"""GeoReport v2's two formats: JSON (lists of objects) and XML (a root element holding one
element per item, with the field names as child elements), and its W3C datetimes.

Documents are built once as plain Python values (``Node``: dicts in the spec's field order,
lists, strings, numbers, booleans, None) and rendered by ``render``: JSON as is, XML by the
element names of ``LIST_ITEMS`` (``attributes`` holds ``attribute`` elements, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET  # noqa: S405 - we write XML, never parse it

from fastapi.responses import Response

from citygrid.kit.clock import CHINA_STANDARD_TIME

FORMATS = ("json", "xml")
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}

#: The element of one item of each list, by the list's element name.
LIST_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}

Node = Any


def w3c(moment: datetime | None) -> str | None:
    """A W3C datetime (ISO 8601 with the offset) in the city's time, to the second."""
    if moment is None:
        return None
    return moment.astimezone(CHINA_STANDARD_TIME).replace(microsecond=0).isoformat()


def _text(value: Node) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _append(parent: ET.Element, name: str, value: Node) -> None:
    element = ET.SubElement(parent, name)
    _fill(element, name, value)


def _fill(element: ET.Element, name: str, value: Node) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _append(element, key, child)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        item_name = LIST_ITEMS.get(name, "item")
        for child in value:
            _append(element, item_name, child)
    else:
        element.text = _text(value)


def to_xml(root: str, document: Node) -> bytes:
    """The document as XML under a root element, with the XML declaration (UTF-8)."""
    element = ET.Element(root)
    _fill(element, root, document)
    return XML_DECLARATION + ET.tostring(element, encoding="unicode").encode()


def to_json(document: Node) -> bytes:
    """The document as compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def render(format_: str, root: str, document: Node, status_code: int = 200) -> Response:
    """An answer in the requested format (``root`` names the XML root element)."""
    body = to_xml(root, document) if format_ == "xml" else to_json(document)
    return Response(body, status_code=status_code, media_type=MEDIA_TYPES[format_])


def error_document(status_code: int, descriptions: Sequence[str]) -> list[dict[str, Any]]:
    """GeoReport's error list: one ``{code, description}`` per problem."""
    return [{"code": status_code, "description": text} for text in descriptions]
