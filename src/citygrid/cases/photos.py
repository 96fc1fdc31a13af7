"""Case photos: checked to be real images, read for their GPS position, stripped of every
piece of metadata, thumbnailed, and stored under the media directory by content hash.

The checks, in order, each refusing with a 422 naming the field and never the content:

1. size: at most ``photo_max_bytes``;
2. an image Pillow recognises, of an allowed format (JPEG, PNG, WebP; HEIC/HEIF when the
   optional ``pillow-heif`` plugin is installed), that survives ``verify()``;
3. at most ``photo_max_pixels`` pixels (read from the header before anything is decoded, so
   a decompression bomb is refused before it can take memory); Pillow's own bomb warning is
   an error here too;
4. it decodes completely (``load()``): a truncated or corrupt file is refused.

Then the EXIF GPS position is read, the EXIF orientation applied, and the picture
re-encoded from its pixels alone: no EXIF, XMP, IPTC, ICC profile, comments or text chunks
survive. The stored name is the SHA-256 of the stored bytes (``ab/cd/<hash>.jpg``); the
thumbnail (a JPEG of at most ``THUMBNAIL_SIZE``) lies next to it as ``<hash>.thumb.jpg``.

Nothing is written while checking: ``process`` works in memory, and ``PhotoStore.put``
writes (atomically, once per content) only after the case was accepted. Files written in
a transaction that then rolls back are removed again (``PhotoStore.put`` records them on
the session; see ``forget_on_rollback``).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError
from sqlalchemy import event
from sqlalchemy.orm import Session

from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _

try:  # HEIC photos from phones, when the optional plugin is there.
    from pillow_heif import register_heif_opener  # type: ignore[import-not-found,unused-ignore]

    register_heif_opener()
    HEIF_FORMATS: frozenset[str] = frozenset({"HEIF"})
except ImportError:  # pragma: no cover - depends on the installation
    HEIF_FORMATS = frozenset()

# A truncated file is an error, not a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Formats accepted as they come from cameras and phones.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"}) | HEIF_FORMATS
THUMBNAIL_SIZE = (400, 400)
JPEG_QUALITY = 85
THUMBNAIL_QUALITY = 75
PHOTO_FIELD = "photos"

_SESSION_KEY = "citygrid.photo_files_written"


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """How large and how many (from the settings)."""

    max_bytes: int
    max_count: int
    max_pixels: int
    max_dimension: int = 2048


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    """A checked photo, re-encoded without metadata, with its thumbnail (in memory)."""

    data: bytes
    thumbnail: bytes
    sha256: str
    extension: str
    content_type: str
    width: int
    height: int
    taken_lat: float | None
    taken_lon: float | None

    @property
    def storage_path(self) -> str:
        """Where it lives under the media directory: by hash, never by a user's file name."""
        return f"{self.sha256[:2]}/{self.sha256[2:4]}/{self.sha256}.{self.extension}"


def thumbnail_path(storage_path: str) -> str:
    """The thumbnail's path next to a stored photo."""
    stem = storage_path.rsplit(".", 1)[0]
    return f"{stem}.thumb.jpg"


def _refuse(field: str, reason: str) -> ValidationFailed:
    return ValidationFailed.one(field, reason)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".rstrip("0").rstrip(".")


def check_count(count: int, limits: PhotoLimits, field: str = PHOTO_FIELD) -> None:
    """Refuse more photos than one submission may carry."""
    if count > limits.max_count:
        raise _refuse(
            field, _("at most {count} photos per submission").format(count=limits.max_count)
        )


def process_all(
    uploads: Sequence[bytes], limits: PhotoLimits, field: str = PHOTO_FIELD
) -> list[ProcessedPhoto]:
    """Check and clean every photo of a submission (nothing is stored)."""
    check_count(len(uploads), limits, field)
    return [process(data, limits, field=f"{field}[{index}]") for index, data in enumerate(uploads)]


def process(data: bytes, limits: PhotoLimits, *, field: str = PHOTO_FIELD) -> ProcessedPhoto:
    """Check one uploaded file and re-encode it without metadata (see the module docstring)."""
    if not data:
        raise _refuse(field, _("the file is empty"))
    if len(data) > limits.max_bytes:
        raise _refuse(
            field,
            _("the photo is larger than {size} MB").format(size=_megabytes(limits.max_bytes)),
        )
    not_an_image = _("the file is not an image (JPEG, PNG or WebP)")
    try:
        with warnings.catch_warnings():
            # Pillow's bomb warning is a refusal here, never a message in a log.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                image_format = probe.format or ""
                width, height = probe.size
                if image_format not in ALLOWED_FORMATS:
                    raise _refuse(field, not_an_image)
                if width * height > limits.max_pixels:
                    raise _refuse(field, _bomb_reason(limits))
                probe.verify()
            image = Image.open(io.BytesIO(data))
            _draft(image, limits.max_dimension)
            image.load()
    except ValidationFailed:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(field, _bomb_reason(limits)) from None
    except UnidentifiedImageError:
        raise _refuse(field, not_an_image) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        raise _refuse(field, _("the image is damaged or incomplete")) from None
    try:
        return _clean(image, image_format, limits.max_dimension)
    finally:
        image.close()


def _draft(image: Image.Image, max_dimension: int) -> None:
    """Let the JPEG decoder scale down by 2, 4 or 8 while decoding (its DCT does it almost
    for free) to the smallest size whose long edge still reaches ``max_dimension``... or
    just under it: a 4000 x 3000 photo is decoded at 2000 x 1500 for a 2048 limit."""
    if image.format != "JPEG" or max_dimension <= 0:
        return
    longest = max(image.size)
    scale = 1
    while scale < 8 and longest / scale > max_dimension:
        scale *= 2
    if scale > 1:
        width, height = image.size
        image.draft("RGB", (-(-width // scale), -(-height // scale)))


def _bomb_reason(limits: PhotoLimits) -> str:
    megapixels = limits.max_pixels / 1_000_000
    return _("the image has more than {megapixels} megapixels").format(megapixels=f"{megapixels:g}")


def _clean(image: Image.Image, image_format: str, max_dimension: int) -> ProcessedPhoto:
    latitude, longitude = gps_position(image.getexif())
    # Upright as the camera meant it; the orientation tag goes with the rest of the EXIF.
    ImageOps.exif_transpose(image, in_place=True)
    upright = image
    if max_dimension > 0 and max(upright.size) > max_dimension:
        upright.thumbnail((max_dimension, max_dimension), Image.Resampling.LANCZOS, 2.0)
    save: dict[str, Any]
    keep_alpha = image_format in ("PNG", "WEBP") and upright.mode in ("RGBA", "LA", "PA", "P")
    if keep_alpha:
        pixels = upright.convert("RGBA")
        extension, content_type, save = "png", "image/png", {"format": "PNG", "compress_level": 6}
    else:
        pixels = upright.convert("RGB") if upright.mode != "RGB" else upright
        extension, content_type = "jpg", "image/jpeg"
        save = {"format": "JPEG", "quality": JPEG_QUALITY, "optimize": False}
    # Only pixels go out: a fresh info dict carries no EXIF, XMP, ICC or text to the encoder.
    pixels.info = {}
    output = io.BytesIO()
    pixels.save(output, **save)
    stored = output.getvalue()
    thumbnail = pixels.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if thumbnail.mode != "RGB":
        thumbnail = thumbnail.convert("RGB")
    thumbnail.info = {}
    thumb_output = io.BytesIO()
    thumbnail.save(thumb_output, format="JPEG", quality=THUMBNAIL_QUALITY)
    return ProcessedPhoto(
        data=stored,
        thumbnail=thumb_output.getvalue(),
        sha256=hashlib.sha256(stored).hexdigest(),
        extension=extension,
        content_type=content_type,
        width=pixels.width,
        height=pixels.height,
        taken_lat=latitude,
        taken_lon=longitude,
    )


def _degrees(value: Any) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals."""
    try:
        degrees, minutes, seconds = (Fraction(float(part)) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return float(degrees + minutes / 60 + seconds / 3600)


def gps_position(exif: Image.Exif) -> tuple[float | None, float | None]:
    """The (latitude, longitude) the camera wrote, if complete and plausible."""
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (KeyError, ValueError, OSError, TypeError):
        return None, None
    if not gps:
        return None, None
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude))
    longitude = _degrees(gps.get(ExifTags.GPS.GPSLongitude))
    if latitude is None or longitude is None:
        return None, None
    if str(gps.get(ExifTags.GPS.GPSLatitudeRef, "N")).strip().upper().startswith("S"):
        latitude = -latitude
    if str(gps.get(ExifTags.GPS.GPSLongitudeRef, "E")).strip().upper().startswith("W"):
        longitude = -longitude
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None, None
    if latitude == 0 and longitude == 0:  # a camera without a fix writes zeros
        return None, None
    return round(latitude, 7), round(longitude, 7)


class PhotoStore:
    """The media directory: files by content hash, written atomically, once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, storage_path: str) -> Path:
        """The file of a stored path (which never leaves the media directory)."""
        path = (self.root / storage_path).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("storage path outside the media directory")
        return path

    def put(self, session: Session, photo: ProcessedPhoto) -> None:
        """Write the photo and its thumbnail unless already there; files created here are
        removed again if the session's transaction rolls back."""
        for relative, content in (
            (photo.storage_path, photo.data),
            (thumbnail_path(photo.storage_path), photo.thumbnail),
        ):
            target = self.path_of(relative)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(content)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            _written(session).append(target)


def _written(session: Session) -> list[Path]:
    written: list[Path] | None = session.info.get(_SESSION_KEY)
    if written is None:
        written = []
        session.info[_SESSION_KEY] = written
        event.listen(session, "after_commit", _forget_written)
        event.listen(session, "after_soft_rollback", _remove_written)
    return written


def _forget_written(session: Session) -> None:
    session.info.get(_SESSION_KEY, []).clear()


def _remove_written(session: Session, previous_transaction: Any) -> None:
    if session.in_transaction():
        # Only a savepoint rolled back: the outer transaction may still commit.
        return
    for path in session.info.get(_SESSION_KEY, []):
        path.unlink(missing_ok=True)
    session.info.get(_SESSION_KEY, []).clear()
