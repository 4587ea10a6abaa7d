"""The jobs' settings: defaults as documented, leases that outlast their renewals, and the
settings that choose the store and the processes of several replicas."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from classifier.core.config import DEFAULT_DATA_DIR, Settings
from classifier.jobs.postgres_store import PostgresJobStore
from classifier.jobs.sqlite_store import SQLiteJobStore
from classifier.jobs.store import open_job_store


def test_job_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSIFIER_DATA_DIR")

    settings = Settings()

    assert settings.data_dir == DEFAULT_DATA_DIR
    assert DEFAULT_DATA_DIR.name == "data"
    assert settings.import_dir is None
    assert settings.max_recording_bytes == 4 * 1024**3
    assert (settings.job_workers, settings.job_retention_hours) == (1, 72)
    assert (settings.job_lease_seconds, settings.job_poll_seconds) == (30, 1)


def test_a_lease_shorter_than_two_renewals_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_JOB_POLL_SECONDS", "5")
    monkeypatch.setenv("CLASSIFIER_JOB_LEASE_SECONDS", "8")

    with pytest.raises(ValidationError, match=r"job_lease_seconds \(8\) must be at least twice"):
        Settings()


def test_the_replica_settings_default_to_one_machine_and_read_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defaults = Settings()
    monkeypatch.setenv("CLASSIFIER_DATABASE_URL", "postgresql://u:p@db:5432/jobs")
    monkeypatch.setenv("CLASSIFIER_RUN_JOBS", "false")
    monkeypatch.setenv("CLASSIFIER_WORKER_HEALTH_FILE", str(tmp_path / "alive"))
    cluster = Settings()

    assert (defaults.database_url, defaults.run_jobs, defaults.worker_health_file) == (
        None,
        True,
        None,
    )
    assert cluster.database_url == "postgresql://u:p@db:5432/jobs"
    assert cluster.run_jobs is False
    assert cluster.worker_health_file == tmp_path / "alive"
    assert isinstance(open_job_store(None, tmp_path / "jobs.sqlite3"), SQLiteJobStore)
    assert isinstance(open_job_store(cluster.database_url, tmp_path / "x"), PostgresJobStore)


def test_a_database_url_that_is_not_postgresql_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_DATABASE_URL", "mysql://db/jobs")

    with pytest.raises(ValidationError, match="database_url is a postgresql:// URL"):
        Settings()
