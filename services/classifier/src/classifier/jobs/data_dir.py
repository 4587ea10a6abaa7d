"""The data folder's layout, and the start-up check that the service can write to it.

<data dir>/jobs.sqlite3          the job store (SQLite, WAL: -wal and -shm files beside it)
<data dir>/uploads/<job id>/     an uploaded recording, kept until its job finishes
<data dir>/jobs/<job id>/        frames.json (an image sequence's files) and results/
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from classifier.core.errors import DataDirError

STORE_FILE = "jobs.sqlite3"


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path

    @property
    def store_path(self) -> Path:
        return self.root / STORE_FILE

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def upload_dir(self, job_id: str) -> Path:
        return self.uploads / job_id

    def job_dir(self, job_id: str) -> Path:
        return self.jobs / job_id

    def results_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "results"

    def remove_upload(self, job_id: str) -> None:
        shutil.rmtree(self.upload_dir(job_id), ignore_errors=True)

    def remove_job(self, job_id: str) -> None:
        """Every file of the job: its upload and its results."""
        self.remove_upload(job_id)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)


def prepare_data_dir(path: Path) -> DataDir:
    """Create the data folder's layout and prove it writable, or raise DataDirError."""
    data = DataDir(path.resolve())
    try:
        for folder in (data.root, data.uploads, data.jobs):
            folder.mkdir(parents=True, exist_ok=True)
        # Creating a file is the only reliable test (read-only mounts, ACLs, other owners).
        with tempfile.NamedTemporaryFile(dir=data.root, prefix=".write-check-"):
            pass
        if data.store_path.exists() and not os.access(data.store_path, os.R_OK | os.W_OK):
            raise PermissionError(f"cannot read and write {data.store_path}")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, PermissionError) and not exc.strerror:
            reason = str(exc)
        raise DataDirError(
            f"the data folder {path} is not writable ({reason}); set CLASSIFIER_DATA_DIR to a "
            "folder this user may write"
        ) from None
    return data
