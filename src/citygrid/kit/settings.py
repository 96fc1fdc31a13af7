"""One settings class for the whole application (environment prefix ``CITYGRID_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")
DEMO_SECRET = "citygrid-demo"  # noqa: S105 - the documented demo default, refused outside demo mode


class Settings(BaseSettings):
    """Configuration read from the environment (and a ``.env`` file, if present)."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_VAR_DIR / 'citygrid.sqlite3'}",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    demo_mode: bool = Field(default=False, description="Allow the documented demo secrets")
    secret_key: str | None = Field(
        default=None, description="Signs sessions and tokens; required outside demo mode"
    )
    default_locale: str = Field(default="zh_CN", description="zh_CN or en")
    map_tile_url: str | None = Field(
        default=None,
        description="Optional base-map tile URL template; the map works without one",
    )
    audit_signing_key: str | None = Field(
        default=None,
        description="Ed25519 private key (base64 of the 32-byte seed) that signs audit checkpoints",
    )
    audit_signing_key_file: Path = Field(
        default=DEFAULT_VAR_DIR / "audit-signing-key",
        description="File holding the signing key when CITYGRID_AUDIT_SIGNING_KEY is unset; "
        "generated in demo mode",
    )
    audit_log_origin: str = Field(
        default="citygrid/audit", description="Name of the log in its signed checkpoints"
    )
    audit_retired_public_keys: list[str] = Field(
        default_factory=list,
        description="Public keys (base64, raw 32 bytes) that signed older checkpoints before a "
        'key rotation; still published and used by verify. JSON: ["...", "..."]',
    )
    embedded_worker: bool = Field(
        default=True,
        description="Run the background tasks (audit sequencer, ...) inside `citygrid serve`; "
        "set false when `citygrid worker` runs them",
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # --- the demo's simulated department feeds (citygrid.demo.feeds)
    demo_feeds: bool = Field(
        default=False,
        description="In demo mode, publish a few simulated life events a minute through the "
        "real publish service (`citygrid demo` turns it on; `--no-feeds` keeps it off)",
    )
    demo_feed_interval_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between two simulated life events"
    )
    demo_seed: int = Field(
        default=20261127, ge=0, description="Seed of the simulated feeds (the demo build's)"
    )
    # --- sign-in, sessions and tokens (citygrid.access)
    trust_proxy_headers: bool = Field(
        default=False,
        description="Believe X-Forwarded-Proto / X-Forwarded-For (only behind your own proxy)",
    )
    session_idle_minutes: int = Field(default=30, ge=1, description="Web session idle expiry")
    session_absolute_hours: int = Field(default=12, ge=1, description="Web session absolute expiry")
    signin_window_minutes: int = Field(
        default=15, ge=1, description="Failed sign-ins are counted over this window"
    )
    signin_slowdown_after: int = Field(
        default=3, ge=1, description="After this many failures each attempt waits 2^(n-k) s"
    )
    signin_account_lock_after: int = Field(
        default=10, ge=1, description="Failures that lock an account name"
    )
    signin_address_lock_after: int = Field(
        default=30, ge=1, description="Failures that lock a source address"
    )
    signin_lock_minutes: int = Field(default=15, ge=1, description="How long a lock lasts")
    access_token_ttl_seconds: int = Field(
        default=900, ge=30, description="Lifetime of an API bearer token"
    )
    password_hash_time_cost: int = Field(default=3, ge=1, description="argon2id iterations")
    password_hash_memory_kib: int = Field(default=65536, ge=8, description="argon2id memory in KiB")
    password_hash_parallelism: int = Field(default=4, ge=1, description="argon2id lanes")
    log_level: str = Field(default="INFO")
    # --- case photos (citygrid.cases.photos)
    media_dir: Path = Field(
        default=DEFAULT_VAR_DIR / "media",
        description="Where case photos and their thumbnails are stored (by content hash)",
    )
    photo_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest accepted photo file, in bytes"
    )
    photo_max_count: int = Field(
        default=6, ge=1, le=50, description="Most photos accepted with one submission"
    )
    photo_max_pixels: int = Field(
        default=50_000_000,
        ge=1,
        # Pillow's own decompression-bomb threshold: above it Pillow refuses by itself.
        le=89_478_485,
        description="Largest accepted photo in pixels (width x height); larger is refused "
        "as a possible decompression bomb",
    )
    photo_max_dimension: int = Field(
        default=2048,
        ge=0,
        description="Longest edge of a stored photo in pixels (larger ones are scaled down; "
        "0 keeps the camera's size)",
    )
    public_report_limit: int = Field(
        default=10, ge=1, description="Reports one address may file on /report per window"
    )
    public_report_window_minutes: int = Field(
        default=60, ge=1, description="The window of public_report_limit"
    )
    # --- webhooks for department systems (citygrid.exchange.webhooks)
    webhook_allow_private_callbacks: bool | None = Field(
        default=None,
        description="Allow callback URLs on loopback/private/link-local addresses; unset: "
        "allowed in demo mode only",
    )
    webhook_max_attempts: int = Field(
        default=12, ge=1, description="Attempts of a webhook delivery before it is dead"
    )
    webhook_connect_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to connect to a callback"
    )
    webhook_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a callback may take to answer"
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, description="Webhook POSTs in flight at once per worker"
    )
    webhook_lease_days: int = Field(
        default=365, ge=1, description="How long a verified subscription lasts (hub.lease_seconds)"
    )
    # --- retention of the exchange's delivery records (citygrid.exchange.retention)
    outbox_retention_days: int = Field(
        default=30,
        ge=1,
        le=36_600,
        description="Days a delivered outbox entry (and its consumers' delivery records) is "
        "kept after its delivery",
    )
    webhook_retention_days: int = Field(
        default=90,
        ge=1,
        le=36_600,
        description="Days a delivered webhook delivery (and its attempts) is kept after its "
        "delivery",
    )
    dead_letter_retention_days: int = Field(
        default=180,
        ge=1,
        le=36_600,
        description="Days a dead outbox entry or webhook delivery is kept unless replayed",
    )
    purge_interval_minutes: int = Field(
        default=60,
        ge=0,
        description="Minutes between two purges by the worker; 0: only `citygrid exchange "
        "purge` purges",
    )
    purge_batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Rows a purge examines per transaction"
    )

    @property
    def webhook_private_callbacks_allowed(self) -> bool:
        """Whether callbacks may point at private or loopback addresses (demo, tests)."""
        if self.webhook_allow_private_callbacks is None:
            return self.demo_mode
        return self.webhook_allow_private_callbacks

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if not self.demo_mode and self.secret_key == DEMO_SECRET:
            raise ValueError(
                "CITYGRID_SECRET_KEY is the demo default; set a real secret "
                "(or CITYGRID_DEMO_MODE=true for the demo)"
            )
        return self

    def require_secret_key(self) -> str:
        """The secret for signing; the demo default only in demo mode."""
        if self.secret_key:
            return self.secret_key
        if self.demo_mode:
            return DEMO_SECRET
        raise ValueError("CITYGRID_SECRET_KEY must be set outside demo mode")

    @property
    def is_sqlite(self) -> bool:
        """True when the configured database is SQLite."""
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def sqlite_url(path: Path | str) -> str:
    """An SQLAlchemy URL for a SQLite file."""
    return f"sqlite:///{Path(path)}"


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url
