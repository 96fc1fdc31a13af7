"""Case intake with one 2 MB photo over HTTP: ``POST /api/v1/cases`` as multipart through a
real uvicorn server (in this process, one worker) on a SQLite file, one request at a time.

    .venv/bin/python -m benchmarks.bench_case_photo [--requests 200] [--megabytes 2]

Each request carries a different photo (a 12-megapixel camera-like JPEG with GPS EXIF,
about 2 MB; the pixels differ, so every request stores new files: no shortcut through the
content-addressed store), an Idempotency-Key and a bearer token of a district dispatcher.
The server checks the photo (Pillow open + verify + load), reads the GPS position, applies
the orientation, re-encodes it without metadata at most 2048 px on its long edge (the
JPEG decoder scales by 2 while decoding), makes the thumbnail, writes both under the media
directory and commits the case with its photo row. The machine's load average is printed:
on a shared machine the tail follows it.

Target (issue "Cases"): p99 at most 150 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from tests.cases.photo_factories import camera_jpeg  # noqa: E402
from tests.fixtures_territory import MINI_GRID_CODES, point_in_grid  # noqa: E402

from benchmarks.bench_cases import dispatcher_token, prepare  # noqa: E402
from citygrid.kit.settings import Settings, sqlite_url  # noqa: E402

WARMUP = 10


def base_photo(megabytes: float) -> tuple[Image.Image, int]:
    """A 4000 x 3000 camera-like picture (gradient, shapes and sensor noise) and the JPEG
    quality that makes it about ``megabytes`` large."""
    rng = random.Random(3)
    width, height = 4000, 3000
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        size = rng.randrange(80, 700)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + size, y + size // 2), fill=colour)
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    image = Image.blend(image, noise, 0.18)
    target = megabytes * 1024 * 1024
    quality = 90
    for candidate in range(98, 40, -1):
        output = io.BytesIO()
        image.save(output, format="JPEG", quality=candidate)
        quality = candidate
        if output.tell() <= target:
            break
    return image, quality


def photo_variants(count: int, megabytes: float) -> list[bytes]:
    """``count`` different photos of about ``megabytes`` each, with GPS EXIF."""
    image, quality = base_photo(megabytes)
    lon, lat = point_in_grid(MINI_GRID_CODES[1])
    exif = Image.open(io.BytesIO(camera_jpeg(lat=lat, lon=lon, size=(8, 8)))).getexif()
    variants = []
    for index in range(count):
        variant = image.copy()
        ImageDraw.Draw(variant).rectangle(
            (10 + index * 3, 10, 40 + index * 3, 40), fill=(index % 256, 0, 255 - index % 256)
        )
        output = io.BytesIO()
        variant.save(output, format="JPEG", quality=quality, exif=exif.tobytes())
        variants.append(output.getvalue())
    return variants


def serve(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The app on a free local port, in a thread."""
    from citygrid.app import create_app

    app = create_app(settings)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return base, server, thread
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def percentile(values: list[float], fraction: float) -> float:
    """The value at a fraction of the sorted list (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--megabytes", type=float, default=2.0)
    args = parser.parse_args()

    print(f"making {args.requests + WARMUP} photos of about {args.megabytes} MB ...")
    photos = photo_variants(args.requests + WARMUP, args.megabytes)
    sizes = [len(photo) for photo in photos]
    print(f"photo size: {statistics.mean(sizes) / 1024 / 1024:.2f} MB (4000 x 3000, GPS EXIF)")

    with tempfile.TemporaryDirectory(prefix="bench-case-photo-") as root:
        url = sqlite_url(Path(root) / "citygrid.sqlite3")
        prepare(url)
        token = dispatcher_token(url)
        settings = Settings(database_url=url, demo_mode=True, media_dir=Path(root) / "media")
        base, server, thread = serve(settings)
        lon, lat = point_in_grid(MINI_GRID_CODES[1])
        fields = {
            "category": "C0201",
            "description": "Three pavement tiles broken in front of No. 12 Jiefang Road",
            "priority": "high",
            "lat": str(lat),
            "lon": str(lon),
        }
        timings: list[float] = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for index, photo in enumerate(photos):
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                started = time.perf_counter()
                response = client.post(
                    "/api/v1/cases",
                    data=fields,
                    files={"photos": ("IMG.jpg", photo, "image/jpeg")},
                    headers=headers,
                )
                elapsed = time.perf_counter() - started
                if response.status_code != 201:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
                if index >= WARMUP:
                    timings.append(elapsed * 1000)
        server.should_exit = True
        thread.join(timeout=20)
        stored = sum(1 for path in (Path(root) / "media").rglob("*.jpg"))

    print(f"requests: {len(timings)} (after {WARMUP} warm-up), files stored: {stored}")
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(
        f"create a case with one {args.megabytes:g} MB photo: "
        f"p50 {percentile(timings, 0.50):.1f} ms, p90 {percentile(timings, 0.90):.1f} ms, "
        f"p99 {percentile(timings, 0.99):.1f} ms, max {max(timings):.1f} ms "
        f"(target p99 <= 150 ms)"
    )


if __name__ == "__main__":
    main()
