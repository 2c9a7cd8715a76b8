"""Worker-only settings (`MUSICREC_WORKER_*` environment variables), beside the catalog settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """Tuning of the Celery pipeline; the broker and result backend come from `catalog.settings`."""

    model_config = SettingsConfigDict(env_prefix="MUSICREC_WORKER_", extra="ignore")

    batch_size: int = Field(16, ge=1, description="Most songs one labelling batch takes.")
    batch_wait_s: float = Field(1.0, ge=0, description="Longest wait of a song for its labelling batch to fill.")
    visibility_timeout_s: int = Field(4 * 3600, description="Redis: an unacked task is redelivered after this long.")
    crawl_time_limit_s: int = Field(3 * 3600, description="Hard limit of one crawl (must stay below the visibility timeout).")
    stage_time_limit_s: int = Field(15 * 60, description="Hard limit of one features, labelling or topics task.")
    max_retries: int = Field(5, ge=0, description="Retries of a task that hit a transient error, with exponential backoff.")
    retry_backoff_max_s: int = Field(300, description="Longest wait between two retries.")
    stale_after_s: float = Field(600.0, description="The sweep re-enqueues songs that sat this long in a pipeline state.")
    sweep_every_s: float = Field(300.0, description="How often beat runs the sweep.")
    key_prefix: str = Field("", description="Prefix of every broker key/queue (isolates several pipelines on one Redis).")
    features: str = Field("workers.stages:extract_features", description="module:function of the features stage.")
    labeller: str = Field("workers.stages:active_labeller", description="module:function returning the labeller object.")
    topics: str = Field("workers.stages:assign_topics", description="module:function of the topics stage.")
    track_tasks: bool = Field(True, description="Store task states (STARTED, SUCCESS, FAILURE) in the result backend for `status`.")
    warm_up: bool = Field(True, description="Each pool process compiles the feature code and loads the model at start.")
    poll_interval_s: float = Field(0.1, description="Polling interval of the embedded SQL transport.")


@lru_cache(maxsize=1)
def worker_settings() -> WorkerSettings:
    return WorkerSettings()
