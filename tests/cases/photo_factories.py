"""Photos for the intake tests, made with Pillow: a camera JPEG with GPS and other EXIF, a
PNG, a text file that claims to be a JPEG, and a decompression bomb."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import ExifTags, Image

MAKE = "CitygridTestCam"
COMMENT = b"taken by a resident at home"


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60, 4)
    return (float(degrees), float(minutes), seconds)


def camera_jpeg(
    *,
    lat: float | None = None,
    lon: float | None = None,
    size: tuple[int, int] = (640, 480),
    orientation: int | None = None,
    quality: int = 90,
    noise: bool = False,
) -> bytes:
    """A JPEG as a camera writes it: maker, comment, optional GPS position and orientation."""
    width, height = size
    if noise:
        image = Image.frombytes("RGB", size, _noise(width * height * 3))
    else:
        image = Image.linear_gradient("L").resize(size).convert("RGB")
        # The top-left corner red: shows where "up" went after the orientation is applied.
        image.paste((220, 20, 20), (0, 0, width // 4, height // 4))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKE
    exif[ExifTags.Base.Model] = "Model 7"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if lat is not None and lon is not None:
        exif[ExifTags.Base.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
            ExifTags.GPS.GPSLatitude: _dms(abs(lat)),
            ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
            ExifTags.GPS.GPSLongitude: _dms(abs(lon)),
        }
    output = io.BytesIO()
    image.save(output, format="JPEG", exif=exif.tobytes(), comment=COMMENT, quality=quality)
    return output.getvalue()


def _noise(length: int) -> bytes:
    # Deterministic noise (a JPEG of it is large, as a real photo is).
    import random

    return random.Random(7).randbytes(length)  # noqa: S311 - test pixels, not secrets


def png_image(size: tuple[int, int] = (300, 200)) -> bytes:
    """A plain PNG with a text chunk."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone")
    output = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(output, format="PNG", pnginfo=info)
    return output.getvalue()


def text_pretending_to_be_jpeg() -> bytes:
    """A text file someone named photo.jpg."""
    return b"This is not a photo at all, just some words.\n" * 20


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims 10 gigapixels: decoding it would take all memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def files_under(root: Path) -> list[Path]:
    """Every file under a directory (none when it does not exist)."""
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
