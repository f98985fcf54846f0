"""Settings, read once from the environment.

Every knob a deployment may turn is here and documented in the README. The embedded
default (no variable set) is a SQLite file, the in-process ``memory://`` broadcast and
the worker inside the web process.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _secret_key(env: str, data_dir: Path) -> str:
    """SECRET_KEY from the environment; in development, generated once into a local file."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    if env == "production":
        raise RuntimeError("SECRET_KEY must be set when CABINET_ENV=production")
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    data_dir: Path = ROOT / "var"
    database_url: str = ""
    broadcast_url: str = "memory://"
    # Events travel sealed in their notices to the other web processes (realtime/seal.py);
    # off, the notices carry ids only and every process reads the events from the database.
    seal_notices: bool = True
    secret_key: str = ""
    smtp_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    time_zone: str = "Europe/Paris"
    locale: str = "en"
    staff_idle_minutes: int = 30
    portal_idle_minutes: int = 30
    session_max_hours: int = 12
    embedded_worker: bool = True
    # argon2id cost; tests lower it so a suite of hundreds of logins stays quick.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    password_min_length: int = 10
    # Login throttling (see server/auth/throttle.py for why there are three scopes).
    throttle_window_minutes: int = 15
    throttle_pair_limit: int = 5
    throttle_address_limit: int = 30
    throttle_account_limit: int = 50
    reset_token_minutes: int = 60
    invite_token_days: int = 7
    # Largest document accepted on a client's file, in megabytes.
    document_max_mb: int = 20
    # Earlier-slot alerts: how long after a slot is freed its offers go out. A short wait lets
    # a mistaken cancellation be undone before five clients hear of the slot.
    offer_delay_seconds: int = 180
    # The web process freezes what survives each full garbage collection (server/collector.py)
    # and collects over everything this often; 0 leaves CPython's collector as it is.
    gc_complete_minutes: int = 10
    # SMS through Twilio when all three are set; otherwise the outbox (console) default.
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def sms_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from)

    @property
    def uses_https(self) -> bool:
        # A scheme is case-insensitive: "HTTPS://" is https too.
        return self.public_url.lower().startswith("https://")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get("CABINET_ENV", "development")
        data_dir = Path(os.environ.get("CABINET_DATA_DIR", str(ROOT / "var")))
        database_url = os.environ.get("DATABASE_URL") or f"sqlite://{data_dir / 'cabinet.sqlite3'}"
        if database_url.startswith("sqlite://"):
            db_path = database_url.removeprefix("sqlite://")
            if db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        return cls(
            env=env,
            data_dir=data_dir,
            database_url=database_url,
            broadcast_url=os.environ.get("BROADCAST_URL", "memory://"),
            seal_notices=_bool(os.environ.get("REALTIME_SEAL_NOTICES"), True),
            secret_key=_secret_key(env, data_dir),
            smtp_url=os.environ.get("SMTP_URL") or None,
            public_url=os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            time_zone=os.environ.get("CABINET_TIME_ZONE", "Europe/Paris"),
            locale=os.environ.get("CABINET_LOCALE", "en"),
            staff_idle_minutes=_int("STAFF_IDLE_MINUTES", 30),
            portal_idle_minutes=_int("PORTAL_IDLE_MINUTES", 30),
            session_max_hours=_int("SESSION_MAX_HOURS", 12),
            embedded_worker=_bool(os.environ.get("CABINET_EMBEDDED_WORKER"), True),
            argon2_time_cost=_int("ARGON2_TIME_COST", 3),
            argon2_memory_kib=_int("ARGON2_MEMORY_KIB", 65536),
            document_max_mb=_int("DOCUMENT_MAX_MB", 20),
            offer_delay_seconds=_int("OFFER_DELAY_SECONDS", 180),
            gc_complete_minutes=_int("GC_COMPLETE_MINUTES", 10),
            twilio_account_sid=os.environ.get("TWILIO_ACCOUNT_SID", ""),
            twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN", ""),
            twilio_from=os.environ.get("TWILIO_FROM", ""),
            twilio_api_url=os.environ.get("TWILIO_API_URL", "https://api.twilio.com").rstrip("/"),
        )


_current: Settings | None = None


def get_settings() -> Settings:
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def set_settings(settings: Settings) -> None:
    """Install settings for this process (the app factory and tests call this)."""
    global _current
    _current = settings
