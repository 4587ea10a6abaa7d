"""Service settings: one pydantic-settings class, read from ``CLASSIFIER_*`` variables."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The model bundled with the service (``services/classifier/models/rodent-behaviour``).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "rodent-behaviour"
#: Where jobs, uploads and results live unless ``CLASSIFIER_DATA_DIR`` says otherwise
#: (``services/classifier/data`` in a checkout; the image sets ``/var/lib/classifier``).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "data"

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

#: Paths anyone may reach when API keys are on: health, the page and its assets. An entry ending
#: in ``/`` is a prefix; any other is one exact path.
DEFAULT_PUBLIC_PATHS = ("/", "/health/", "/v2/health/", "/static/", "/favicon.ico")
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks and container cpusets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Settings(BaseSettings):
    """Every knob of the classifier. Each field is documented in ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        env_prefix="CLASSIFIER_", env_file=None, extra="ignore", frozen=True
    )

    # --- server -----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 inside containers.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    workers: int = Field(
        0, ge=0, le=64, description="Server processes (uvicorn workers); 0: one per CPU core."
    )
    log_level: LogLevel = Field("info", description="Level of application log records.")
    access_log_stdout: bool = Field(
        True, description="Write one JSON line per request to stdout (besides fluentd)."
    )

    # --- model ------------------------------------------------------------------------------
    model_dir: Path = Field(
        DEFAULT_MODEL_DIR, description="Folder holding model.onnx and manifest.json."
    )
    intra_op_threads: int = Field(
        1, ge=0, le=64, description="onnxruntime intra-op threads per process (0: runtime picks)."
    )

    # --- log shipping -----------------------------------------------------------------------
    fluentd_host: str | None = Field(
        None, description="fluentd host; unset means records go to stdout only."
    )
    fluentd_port: int = Field(24224, ge=1, le=65535, description="fluentd forward-input port.")
    fluentd_timeout: float = Field(
        0.5, gt=0, le=30, description="Seconds a send to fluentd may take before it is abandoned."
    )
    fluentd_queue_size: int = Field(
        10_000, ge=1, description="Records held for fluentd before the oldest are dropped."
    )

    # --- limits on what a request may carry ---------------------------------------------------
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body (413 above it)."
    )
    max_frame_bytes: int = Field(
        2 * 1024 * 1024, ge=64, description="Largest single uploaded frame (413 above it)."
    )
    max_frame_pixels: int = Field(
        4096 * 4096, ge=1, description="Most pixels one frame may declare in its header."
    )
    max_parts: int = Field(
        256, ge=1, description="Most multipart parts (files and fields) one request may carry."
    )
    request_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to finish sending its body."
    )

    # --- concurrency ------------------------------------------------------------------------
    max_concurrency: int = Field(
        64, ge=1, description="Requests processed at once per worker before shedding with 503."
    )
    max_queue_ms: float = Field(
        100.0,
        ge=0,
        description="Shed a request (503) that waited longer than this for its worker (0: never).",
    )
    max_batch: int = Field(
        1, ge=1, le=256, description="Most sequences run through the model in one call (1: off)."
    )
    batch_delay_ms: float = Field(
        0.0, ge=0, le=1000, description="How long a batch waits for more sequences to arrive."
    )
    inline_decode_bytes: int = Field(
        128 * 1024,
        ge=0,
        description="Uploads up to this size decode on the event loop, larger ones in a thread.",
    )
    inline_inference_ms: float = Field(
        10.0,
        ge=0,
        le=50,
        description="Batches expected to take less than this run on the event loop, not a thread.",
    )

    # --- recordings and jobs ----------------------------------------------------------------
    data_dir: Path = Field(
        DEFAULT_DATA_DIR, description="Folder for the job store, uploaded recordings and results."
    )
    import_dir: Path | None = Field(
        None, description="Folder recordings may be submitted from by path; unset: by path is off."
    )
    max_recording_bytes: int = Field(
        4 * GIB, ge=1024, description="Largest recording upload (413 above it)."
    )
    max_sequence_frames: int = Field(
        216_000, ge=1, description="Most frames one image-sequence upload may carry (413 above)."
    )
    max_sequence_frame_bytes: int = Field(
        16 * MIB, ge=64, description="Largest single frame of an image-sequence upload (413)."
    )
    max_concurrent_uploads: int = Field(
        4, ge=1, description="Recording uploads one worker receives at once (503 above it)."
    )
    upload_idle_timeout: float = Field(
        60.0, gt=0, description="Seconds a recording upload may send nothing before it is a 408."
    )
    min_free_bytes: int = Field(
        256 * MIB, ge=0, description="Free space the data folder must keep after an upload (507)."
    )
    job_workers: int = Field(
        1, ge=1, le=256, description="Jobs analysed at once by the whole service."
    )
    job_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes one job decodes and encodes a long recording with; 0: one per core.",
    )
    job_retention_hours: float = Field(
        72.0, gt=0, description="Hours a finished job and its files are kept."
    )
    job_lease_seconds: float = Field(
        30.0, gt=0, description="Seconds a running job stays held without a renewal."
    )
    job_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often a process looks for jobs and writes progress."
    )
    job_max_attempts: int = Field(
        3, ge=1, le=100, description="Starts a job gets before its holder's deaths fail it."
    )

    # --- several replicas (docs/deployment.md) --------------------------------------------------
    database_url: str | None = Field(
        None,
        description="postgresql:// URL of the shared job store; unset: SQLite in the data folder.",
    )
    run_jobs: bool = Field(
        True, description="serve also runs jobs; false: HTTP only, `worker` processes run them."
    )
    worker_health_file: Path | None = Field(
        None, description="File `worker` creates once ready and touches every few seconds."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url is a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _leases_outlast_renewals(self) -> Settings:
        # A lease renewed every poll must survive at least one late renewal, or a busy but live
        # holder would lose its job to another process.
        if self.job_lease_seconds < 2 * self.job_poll_seconds:
            raise ValueError(
                f"job_lease_seconds ({self.job_lease_seconds:g}) must be at least twice "
                f"job_poll_seconds ({self.job_poll_seconds:g}), how often leases are renewed"
            )
        return self

    # --- access control (docs/security.md) -----------------------------------------------------
    api_keys_file: Path | None = Field(
        None, description="Keys file (JSON lines of hashed keys); unset: no keys, all open."
    )
    public_paths: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_PUBLIC_PATHS,
        description="Paths open without a key when keys are on (a trailing / makes a prefix).",
    )
    docs_access: Literal["open", "off"] = Field(
        "open", description="/docs, /redoc and /openapi.json: served to anyone, or not at all."
    )
    metrics_access: Literal["open", "key", "off"] = Field(
        "open", description="/metrics: open to anyone, only with a key, or not served."
    )
    api_key_rps: float = Field(
        0.0, ge=0, description="Default requests per second per key, per process (0: no limit)."
    )
    api_key_burst: int = Field(
        0, ge=0, description="Default burst above that rate (0: one second's worth)."
    )
    api_key_max_running_jobs: int = Field(
        0, ge=0, description="Default queued or running jobs per key (0: no limit)."
    )
    api_key_recording_bytes_per_day: int = Field(
        0, ge=0, description="Default recording bytes a key may submit per UTC day (0: no limit)."
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Origins allowed to call the API from a browser (CORS); empty: none."
    )

    @field_validator("public_paths", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # From the environment: a comma-separated list (or a JSON array, as for other settings).
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @field_validator("public_paths")
    @classmethod
    def _check_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"a public path starts with '/': {path!r}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"a CORS origin is scheme://host[:port] with no path or trailing slash, "
                    f"as browsers send it: {origin!r}"
                )
        return value

    @model_validator(mode="after")
    def _metrics_key_needs_keys(self) -> Settings:
        if self.metrics_access == "key" and self.api_keys_file is None:
            raise ValueError("metrics_access 'key' needs api_keys_file (CLASSIFIER_API_KEYS_FILE)")
        return self

    @property
    def worker_processes(self) -> int:
        return self.workers or available_cores()
