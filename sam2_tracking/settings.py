"""Settings read once from environment variables (every variable is documented in README.md).

`load_settings()` is the only place that reads the environment; everything else receives a `Settings`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "SAM2T_"


def _env(name: str, default: str) -> str:
    value = os.environ.get(ENV_PREFIX + name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_list(name: str, default: str) -> tuple[str, ...]:
    raw = _env(name, default)
    if raw.lower() in ("none", "off", "-"):
        return ()
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV_PREFIX}{name} must be true/false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one process of the app or of a consumer.

    data_dir: root for the SQLite store, the SQLite queue file, uploaded videos and job previews.
    model_dir: the workers' model store (checkpoints and configs); defaults to data_dir/models.
    queue_url: "" (SQLite file data_dir/queues.db) or "redis://host:port/db" for consumers on other machines.
    database_url: "" (the SQLite store data_dir/store.db) or "postgresql://user:pass@host:port/db": the store for
        processes on several machines (a SQLite file must never be shared over a network disk).
    queue_names: the Huey queues the app offers; annotators pick one per job.
    embedded_consumers: queues that app.py serves with a consumer inside its own process (laptop trial / Space).
    admin_user / admin_password: login for the Admin tab; an empty password means no login at all and everyone
        may use the Admin tab (the local trial; the app then listens on 127.0.0.1 only by default). app.py refuses
        to start without a password where others can reach it (require_logins_when_reachable), unless open_access.
    annotators: extra (user, password) logins that may annotate but not administer; used only with a password set.
    open_access: SAM2T_OPEN, "no logins, on purpose": lets app.py listen on a non-loopback address (or behind
        trusted_proxies) without an admin password; everyone who reaches it is admin. Refused with a password set.
    trusted_proxies: SAM2T_TRUSTED_PROXIES, the reverse proxies (IP addresses or networks) whose X-Forwarded-For is
        believed; default none. The client address (the login throttle's key) is the socket peer, or, when that
        peer is listed, the right-most X-Forwarded-For address that is not a listed proxy.
    """

    data_dir: Path
    model_dir: Path
    queue_url: str = ""
    database_url: str = ""
    queue_names: tuple[str, ...] = ("cpu", "gpu")
    embedded_consumers: tuple[str, ...] = ("cpu",)
    admin_user: str = "admin"
    admin_password: str = ""
    annotators: tuple[tuple[str, str], ...] = ()
    open_access: bool = False
    trusted_proxies: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 7860
    sample_video: bool = True
    # Resource limits (README "Reliability and security"). A frame of max_frame_pixels decodes to 3 bytes a pixel:
    # the default, twice DCI 4K (4096x2160x2, 17.7 Mpx, 53 MB as RGB), takes any camera format in use while keeping a
    # decoded frame, its overlay and a few cached copies well under a GB; SAM2 resizes to 1024 anyway.
    max_frame_pixels: int = 4096 * 2160 * 2
    max_upload_bytes: int = 4 * 1024**3  # Gradio's max_file_size: one upload, any kind
    max_zip_members: int = 200_000  # files in any uploaded zip (a frame per file at 30 fps: nearly 2 hours)
    max_zip_bytes: int = 8 * 1024**3  # total declared uncompressed size of any uploaded zip
    max_zip_expansion_bytes: int = 1024**3  # an imported mask zip's files, uncompressed (checked before extracting)
    max_zip_ratio: int = 600  # an imported mask zip may expand at most this many times its size (DIVE-DSA's limit)
    max_label_chars: int = 256  # a track label in an imported file
    max_tracks_per_import: int = 10_000  # tracks in one imported file
    upload_concurrency: int = 4  # upload/import handlers running at once (Gradio's default is 1: one blocks all)
    login_max_failures: int = 5  # failed logins per user and address before a backoff starts
    login_backoff_seconds: float = 30.0  # first lockout; doubles with each further failure, capped at 15 minutes
    export_max_age_seconds: int = 3600  # exported files are removed after this long
    exports_per_user: int = 10  # and never more than this many are kept per user
    max_checkpoint_bytes: int = 2_000_000_000  # a model download or upload; SAM2.1 Large is 898 MB
    download_connect_timeout_seconds: int = 15
    download_read_timeout_seconds: int = 60  # the longest a download waits for its next bytes (not the whole file)
    # The viewer's frames encoded once as JPEG on disk (web/frame_pack.py): ~100-300 KB a 1080p frame, so 2 GiB holds
    # 7,000-20,000 frames around where people work; 0 turns it off (every frame decoded on demand).
    viewer_cache_bytes: int = 2 * 1024**3
    # Consumers on other machines (README "Deployment"): the app serves videos to holders of worker_token, and a
    # consumer that cannot open a video's path fetches it from app_url (cached by content hash in its data_dir).
    worker_token: str = ""
    app_url: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.embedded_consumers:
            if name not in self.queue_names:
                raise ValueError(
                    f"{ENV_PREFIX}EMBED_CONSUMERS names queue {name!r}, which is not in "
                    f"{ENV_PREFIX}QUEUES ({', '.join(self.queue_names)})"
                )
        if self.app_url and not self.app_url.startswith(("http://", "https://")):
            raise ValueError(f"{ENV_PREFIX}APP_URL must be the app's http:// or https:// address, got {self.app_url!r}")
        if self.worker_token and len(self.worker_token) < 16:
            raise ValueError(f"{ENV_PREFIX}WORKER_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`)")
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgres://",
                                                                   "postgresql+psycopg://")):
            raise ValueError(f"{ENV_PREFIX}DATABASE_URL must be empty (SQLite in the data folder) or a "
                             "postgresql://user:password@host:port/database URL")
        if self.queue_url and not self.queue_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{ENV_PREFIX}QUEUE_URL must be empty (SQLite) or a redis:// URL, got {self.queue_url!r}")
        for env_name, value in (("MAX_FRAME_PIXELS", self.max_frame_pixels), ("MAX_UPLOAD_BYTES", self.max_upload_bytes),
                                ("MAX_ZIP_MEMBERS", self.max_zip_members), ("MAX_ZIP_BYTES", self.max_zip_bytes),
                                ("MAX_ZIP_EXPANSION_BYTES", self.max_zip_expansion_bytes),
                                ("MAX_ZIP_RATIO", self.max_zip_ratio), ("MAX_LABEL_CHARS", self.max_label_chars),
                                ("MAX_TRACKS_PER_IMPORT", self.max_tracks_per_import),
                                ("UPLOAD_CONCURRENCY", self.upload_concurrency),
                                ("LOGIN_MAX_FAILURES", self.login_max_failures),
                                ("EXPORTS_PER_USER", self.exports_per_user),
                                ("MAX_CHECKPOINT_BYTES", self.max_checkpoint_bytes),
                                ("DOWNLOAD_CONNECT_TIMEOUT_SECONDS", self.download_connect_timeout_seconds),
                                ("DOWNLOAD_READ_TIMEOUT_SECONDS", self.download_read_timeout_seconds)):
            if value < 1:
                raise ValueError(f"{ENV_PREFIX}{env_name} must be at least 1, got {value}")
        for entry in self.trusted_proxies:
            _check_proxy_entry(entry)
        if self.open_access and self.admin_password:
            raise ValueError(f"{ENV_PREFIX}OPEN=1 means no logins, but {ENV_PREFIX}ADMIN_PASSWORD is set: "
                             "unset one of them")
        if self.viewer_cache_bytes < 0:
            raise ValueError(f"{ENV_PREFIX}VIEWER_CACHE_BYTES must be 0 (off) or more, got {self.viewer_cache_bytes}")

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.db"

    @property
    def store_location(self) -> str | Path:
        """What open_store opens: the PostgreSQL database when SAM2T_DATABASE_URL is set, else the SQLite file."""
        return self.database_url or self.store_path

    @property
    def store_description(self) -> str:
        """store_location for logs and pages: a URL without its password."""
        if not self.database_url:
            return str(self.store_path)
        scheme, _, rest = self.database_url.partition("://")
        credentials, at, host = rest.rpartition("@")
        return f"{scheme}://{credentials.split(':', 1)[0]}{':***' if ':' in credentials else ''}{at}{host}"

    @property
    def queue_db_path(self) -> Path:
        return self.data_dir / "queues.db"

    @property
    def video_dir(self) -> Path:
        return self.data_dir / "videos"

    @property
    def viewer_cache_dir(self) -> Path:
        return self.data_dir / "viewer-frames"

    @property
    def admin_auth_enabled(self) -> bool:
        return bool(self.admin_password)


def _check_proxy_entry(entry: str) -> None:
    # Parsed as uvicorn parses FORWARDED_ALLOW_IPS (ui/auth.py hands it this list), but strictly: uvicorn keeps
    # what it cannot parse ("*", a host name, 10.0.0.1/8 with host bits) as a literal that matches nothing, or,
    # for "*", everyone; here either is an error naming the setting.
    try:
        if "/" in entry:
            ipaddress.ip_network(entry)
        else:
            ipaddress.ip_address(entry)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}TRUSTED_PROXIES lists {entry!r}: give the proxies' IP addresses or networks, "
                         "e.g. 127.0.0.1,10.0.0.0/24 (no host names, no *)") from None


def is_loopback_host(host: str) -> bool:
    """Whether listening on `host` keeps the app on this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # 0.0.0.0 and :: parse; any other host name may resolve anywhere


def require_logins_when_reachable(settings: Settings) -> None:
    """Raise ValueError when app.py would serve others without any login: no admin password, no SAM2T_OPEN, and a
    non-loopback address or a trusted proxy in front. The laptop trial (127.0.0.1, no password) passes; a Space
    without a password was already refused by load_settings."""
    if settings.admin_auth_enabled or settings.open_access:
        return
    if not is_loopback_host(settings.host):
        where = f"would listen on {settings.host} ({ENV_PREFIX}HOST), which other machines can reach,"
    elif settings.trusted_proxies:
        where = f"would be reached through the proxies in {ENV_PREFIX}TRUSTED_PROXIES"
    else:
        return
    raise ValueError(f"refusing to start: the app {where} and {ENV_PREFIX}ADMIN_PASSWORD is empty, so there would be "
                     f"no login and everyone could use the Admin tab. Either set {ENV_PREFIX}ADMIN_PASSWORD to "
                     f"require logins, or set {ENV_PREFIX}OPEN=1 to serve without logins on purpose.")


def _env_accounts(name: str) -> tuple[tuple[str, str], ...]:
    accounts = []
    for item in _env_list(name, ""):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"{ENV_PREFIX}{name} must be a comma-separated list of user:password, got {item!r}")
        accounts.append((user, password))
    return tuple(accounts)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name} must be an integer, got {raw!r}") from None


# A Hugging Face Space's persistent storage is mounted here (when the Space has it); SPACE_ID is set on every Space.
SPACE_PERSISTENT_DIR = Path("/data")


def on_hugging_face_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def _default_data_dir() -> str:
    # A Space's own folder is wiped on every restart: with persistent storage, the store, videos and models go to
    # /data so annotations survive. Without it they live (and die) with the Space, as its README says.
    if on_hugging_face_space() and SPACE_PERSISTENT_DIR.is_dir() and os.access(SPACE_PERSISTENT_DIR, os.W_OK):
        return str(SPACE_PERSISTENT_DIR)
    return "data"


def load_settings() -> Settings:
    """Read settings from the environment; raises ValueError naming the variable at fault."""
    space = on_hugging_face_space()
    if space and not _env("ADMIN_PASSWORD", ""):
        # A Space is public: with no password everyone could use the Admin tab (download models, change settings).
        raise ValueError(f"on a Hugging Face Space set {ENV_PREFIX}ADMIN_PASSWORD as a Space secret "
                         "(Settings > Variables and secrets): without it everyone would be admin")
    data_dir = Path(_env("DATA_DIR", _default_data_dir())).expanduser().resolve()
    embedded = _env_list("EMBED_CONSUMERS", "cpu")
    if os.environ.get("SPACES_ZERO_GPU") and any(queue != "cpu" for queue in embedded):
        # ZeroGPU lends a GPU only inside a @spaces.GPU call made from a Gradio request, for at most its duration;
        # a consumer thread runs outside any request and would never see CUDA (README "Deployment", Space).
        raise ValueError(f"{ENV_PREFIX}EMBED_CONSUMERS={','.join(embedded)}: a ZeroGPU Space cannot run a GPU consumer; "
                         f"use {ENV_PREFIX}EMBED_CONSUMERS=cpu, or a Space with a dedicated GPU")
    model_dir = Path(_env("MODEL_DIR", str(data_dir / "models"))).expanduser().resolve()
    port_raw = _env("PORT", "7860")
    try:
        port = int(port_raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}PORT must be an integer, got {port_raw!r}") from None
    return Settings(
        data_dir=data_dir,
        model_dir=model_dir,
        queue_url=_env("QUEUE_URL", ""),
        database_url=_env("DATABASE_URL", ""),
        queue_names=_env_list("QUEUES", "cpu,gpu"),
        embedded_consumers=embedded,
        admin_user=_env("ADMIN_USER", "admin"),
        admin_password=_env("ADMIN_PASSWORD", ""),
        annotators=_env_accounts("ANNOTATORS"),
        open_access=_env_bool("OPEN", False),
        trusted_proxies=_env_list("TRUSTED_PROXIES", ""),
        # A Space routes its public address to 0.0.0.0:7860 inside the container; a laptop listens on loopback only.
        host=_env("HOST", "0.0.0.0" if space else "127.0.0.1"),
        port=port,
        sample_video=_env_bool("SAMPLE_VIDEO", True),
        max_frame_pixels=_env_int("MAX_FRAME_PIXELS", Settings.max_frame_pixels),
        max_upload_bytes=_env_int("MAX_UPLOAD_BYTES", Settings.max_upload_bytes),
        max_zip_members=_env_int("MAX_ZIP_MEMBERS", Settings.max_zip_members),
        max_zip_bytes=_env_int("MAX_ZIP_BYTES", Settings.max_zip_bytes),
        max_zip_expansion_bytes=_env_int("MAX_ZIP_EXPANSION_BYTES", Settings.max_zip_expansion_bytes),
        max_zip_ratio=_env_int("MAX_ZIP_RATIO", Settings.max_zip_ratio),
        max_label_chars=_env_int("MAX_LABEL_CHARS", Settings.max_label_chars),
        max_tracks_per_import=_env_int("MAX_TRACKS_PER_IMPORT", Settings.max_tracks_per_import),
        upload_concurrency=_env_int("UPLOAD_CONCURRENCY", Settings.upload_concurrency),
        login_max_failures=_env_int("LOGIN_MAX_FAILURES", Settings.login_max_failures),
        login_backoff_seconds=float(_env_int("LOGIN_BACKOFF_SECONDS", int(Settings.login_backoff_seconds))),
        export_max_age_seconds=_env_int("EXPORT_MAX_AGE_SECONDS", Settings.export_max_age_seconds),
        exports_per_user=_env_int("EXPORTS_PER_USER", Settings.exports_per_user),
        max_checkpoint_bytes=_env_int("MAX_CHECKPOINT_BYTES", Settings.max_checkpoint_bytes),
        download_connect_timeout_seconds=_env_int("DOWNLOAD_CONNECT_TIMEOUT_SECONDS",
                                                  Settings.download_connect_timeout_seconds),
        download_read_timeout_seconds=_env_int("DOWNLOAD_READ_TIMEOUT_SECONDS", Settings.download_read_timeout_seconds),
        viewer_cache_bytes=_env_int("VIEWER_CACHE_BYTES", Settings.viewer_cache_bytes),
        worker_token=_env("WORKER_TOKEN", ""),
        app_url=_env("APP_URL", "").rstrip("/"),
    )
