"""One settings object, read from `MUSICREC_*` environment variables and an optional `musicrec.toml`."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

CONFIG_ENV = "MUSICREC_CONFIG"
CRAWL_ENV_PREFIX = "MUSICREC_CRAWL_"
DEFAULT_CONFIG_FILE = "musicrec.toml"


def config_file() -> Path:
    """The TOML file to read: `$MUSICREC_CONFIG`, else `./musicrec.toml`."""
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


class CrawlerEnvSource(PydanticBaseSettingsSource):
    """`MUSICREC_CRAWL_<SCRAPY_SETTING>` variables as entries of the `crawler` table (e.g. MUSICREC_CRAWL_USER_AGENT);
    names of our own `crawl_*` fields (MUSICREC_CRAWL_MAX_PAGES, ...) are left to the normal environment source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        own = {f"MUSICREC_{name.upper()}" for name in self.settings_cls.model_fields}
        table = {
            key[len(CRAWL_ENV_PREFIX) :].upper(): value
            for key, value in os.environ.items()
            if key.startswith(CRAWL_ENV_PREFIX) and len(key) > len(CRAWL_ENV_PREFIX) and key not in own
        }
        return {"crawler": table} if table else {}


class Settings(BaseSettings):
    """Effective configuration of one musicrec process."""

    model_config = SettingsConfigDict(env_prefix="MUSICREC_", extra="ignore", validate_default=True)

    var_dir: Path = Field(Path("var"), description="Folder for the default SQLite files, logs and plots.")
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite file var/musicrec.db.")
    broker_url: str = Field("", description="Celery broker; default: kombu SQLAlchemy transport on var/broker.db.")
    result_backend: str = Field("", description="Celery result backend; default: SQLite file var/results.db.")
    store_dir: Path | None = Field(None, description="Content-addressed store for audio, features and models; default: <var_dir>/store.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    api_keys: list[SecretStr] = Field(default_factory=list, description="Keys accepted in X-API-Key for admin routes.")
    jamendo_client_id: SecretStr | None = None
    ast_checkpoint: str = Field("", description="Local path of an AST checkpoint (e.g. MIT/ast-finetuned-audioset-10-10-0.4593).")
    whisper_checkpoint: str = Field("", description="Local transformers Whisper folder (save_pretrained) used instead of the packaged weights.")
    whisper_model: Literal["tiny.en", "base"] = Field("tiny.en", description="Packaged Whisper whose encoder the `whisper` encoder runs.")
    whisper_layer: int = Field(2, ge=0, le=32, description="Whisper encoder layer whose hidden states the `whisper` encoder returns.")
    speech_int8: bool = Field(
        True, description="Serve speech models with their frozen Whisper encoders' linear layers int8-quantized (dynamic; faster on CPU). "
                          "Training and benchmarks always use float32.",
    )
    text_encoder: str = Field("", description="Local path of a BERT-family encoder; default: packaged all-MiniLM-L6-v2.")
    log_level: str = "INFO"
    db_busy_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for a locked database (SQLite busy timeout, PostgreSQL lock_timeout, pool wait, retries); then 503."
    )

    # HTTP API (recommender/api)
    speech_model: str = Field("", description="Speech model folder; default: the active speech model.")
    max_upload_mb: float = Field(10.0, gt=0, description="Largest accepted upload; a longer body (chunked too) is cut off with 413.")
    max_clip_s: float = Field(30.0, gt=0, description="Longest accepted voice clip (seconds).")
    min_speech_s: float = Field(0.3, ge=0, description="Least speech after trimming silence (seconds).")
    max_clip_rate_hz: int = Field(96000, gt=0, description="Highest sample rate of an accepted clip.")
    max_clip_channels: int = Field(8, gt=0, description="Most channels of an accepted clip.")
    max_decoded_mb: float = Field(24.0, gt=0, description="Refuse a clip whose rate x channels x duration as float32 exceeds this, before decoding.")
    playlist_size: int = Field(5, ge=1, le=50, description="Songs per playlist once preferences are known.")
    torch_threads: int = Field(1, ge=1, description="Torch/BLAS threads of the API process.")
    crawl_dispatch: bool = Field(True, description="POST /v1/crawls sends the crawl task to the broker (False: the job waits for `musicrec crawl`).")

    # Crawls started through the API (and every crawl's page limits)
    crawl_allow_hosts: list[str] = Field(default_factory=list, description="Private/loopback hosts or CIDRs API crawls may reach (default: public only).")
    crawl_max_pages: int = Field(500, ge=1, description="Most listing/HTML pages one crawl fetches.")
    crawl_max_depth: int = Field(8, ge=0, description="Deepest link depth a crawl follows.")
    crawl_page_max_mb: float = Field(10.0, gt=0, description="Largest page body (after decompression); DOWNLOAD_MAXSIZE.")
    crawl_page_warn_mb: float = Field(2.0, gt=0, description="Page size that logs a warning; DOWNLOAD_WARNSIZE.")
    crawl_lyrics_max_kb: int = Field(64, gt=0, description="Largest lyrics text kept (larger is dropped).")
    crawl_arg_max_chars: int = Field(2048, gt=0, description="Longest crawl argument value accepted by the API.")
    sites_dir: Path | None = Field(None, description="Folder of site rule files; `rules=` must name a file in it; default: crawler/sites.")
    jamendo_base_url: str = Field("https://api.jamendo.com/v3.0", description="Jamendo API base URL (never from crawl arguments).")
    crawler: dict[str, Any] = Field(
        default_factory=dict, description="Scrapy setting overrides: [crawler] in musicrec.toml and MUSICREC_CRAWL_<SETTING> variables (these win)."
    )

    # Workers (workers/); the Celery broker and result backend are above
    worker_batch_size: int = Field(16, ge=1, description="Most songs one labelling batch takes.")
    worker_batch_wait_s: float = Field(1.0, ge=0, description="Longest wait of a song for its labelling batch to fill.")
    worker_visibility_timeout_s: int = Field(4 * 3600, description="Redis: an unacked task is redelivered after this long.")
    worker_crawl_time_limit_s: int = Field(3 * 3600, description="Hard limit of one crawl (must stay below the visibility timeout).")
    worker_stage_time_limit_s: int = Field(15 * 60, description="Hard limit of one features, labelling or topics task.")
    worker_max_retries: int = Field(5, ge=0, description="Retries of a task that hit a transient or configuration error, with exponential backoff.")
    worker_retry_backoff_max_s: int = Field(300, description="Longest wait between two retries.")
    worker_stale_after_s: float = Field(600.0, description="The sweep re-enqueues songs that sat this long in a pipeline state.")
    worker_heartbeat_s: float = Field(30.0, gt=0, description="How often a running crawl job records a heartbeat.")
    worker_heartbeat_timeout_s: float = Field(300.0, gt=0, description="The sweep requeues (or fails) a running crawl job silent this long.")
    worker_sweep_every_s: float = Field(300.0, description="How often beat runs the sweep.")
    worker_key_prefix: str = Field("", description="Prefix of every broker key/queue (isolates several pipelines on one Redis).")
    worker_track_tasks: bool = Field(True, description="Store task states (STARTED, SUCCESS, FAILURE) in the result backend for `status`.")
    worker_warm_up: bool = Field(True, description="Each pool process compiles the feature code and loads the model at start.")
    worker_poll_interval_s: float = Field(0.1, description="Polling interval of the embedded SQL transport.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, CrawlerEnvSource(settings_cls), toml, file_secret_settings)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.crawler = {str(k).upper(): v for k, v in self.crawler.items()}
        self.var_dir = self.var_dir.expanduser().resolve()
        self.store_dir = (self.store_dir or self.var_dir / "store").expanduser().resolve()
        self.sites_dir = (self.sites_dir or Path(__file__).resolve().parent.parent / "crawler" / "sites").expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'musicrec.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.var_dir / 'broker.db'}"
        if not self.result_backend:
            self.result_backend = f"db+sqlite:///{self.var_dir / 'results.db'}"
        return self

    def torch_device(self) -> str:
        """Resolve `device` to a torch device string (`auto` picks CUDA when available)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def ensure_dirs(self) -> None:
        """Create the var and store folders."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        assert self.store_dir is not None  # filled by _fill_defaults
        self.store_dir.mkdir(parents=True, exist_ok=True)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, secrets and URL passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif isinstance(value, list):
                value = ["********" if isinstance(v, SecretStr) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, str) and name.endswith(("_url", "_backend")):
                value = mask_url(value)
            out[name] = value
        return out


def mask_url(url: str) -> str:
    """Hide the password in `scheme://user:password@host/...`."""
    return re.sub(r"(://[^:/@]+:)[^@]*(@)", r"\1********\2", url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call `reload_settings()` after changing the environment)."""
    return Settings()


def reload_settings() -> Settings:
    """Drop the cached settings and read them again."""
    get_settings.cache_clear()
    return get_settings()
