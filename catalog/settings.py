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
DEFAULT_CONFIG_FILE = "musicrec.toml"


def config_file() -> Path:
    """The TOML file to read: `$MUSICREC_CONFIG`, else `./musicrec.toml`."""
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


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
    text_encoder: str = Field("", description="Local path of a BERT-family encoder; default: packaged all-MiniLM-L6-v2.")
    log_level: str = "INFO"

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
        return (init_settings, env_settings, toml, file_secret_settings)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "Settings":
        self.var_dir = self.var_dir.expanduser().resolve()
        self.store_dir = (self.store_dir or self.var_dir / "store").expanduser().resolve()
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
        self.store_dir.mkdir(parents=True, exist_ok=True)

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
