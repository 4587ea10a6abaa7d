"""Jobs over HTTP: list them, follow one, cancel or delete it, and download its results."""

from __future__ import annotations

import re
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from classifier.api.deps import JobsDep, ServiceDep
from classifier.api.schemas import Problem
from classifier.core.errors import JobNotFoundError, JobStateError, ResultNotFoundError
from classifier.jobs.document import job_document
from classifier.jobs.records import Job, JobFilters, JobStatus
from classifier.recordings.exports import RESULT_FILES

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
#: Every file a succeeded job may have (the binned budget only when ``bin_s`` was given).
KNOWN_RESULTS = (*RESULT_FILES, "time_budget_bins.csv")
MEDIA_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
    ".zip": "application/zip",
}
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")

JobId = Annotated[str, Path(description="The job's id, as submitting answered it.")]


async def _job(jobs: JobsDep, job_id: str) -> Job:
    job = await anyio.to_thread.run_sync(jobs.store.get, job_id)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} (finished jobs expire after a while)")
    return job


@router.get("", summary="Jobs, newest first, paged and filterable")
async def list_jobs(
    request: Request,
    jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per page.")] = 20,
    offset: Annotated[int, Query(ge=0, description="Jobs to skip.")] = 0,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    subject: Annotated[str | None, Query(description="Only jobs of this subject.")] = None,
    session: Annotated[str | None, Query(description="Only jobs of this session.")] = None,
) -> JSONResponse:
    filters = JobFilters(status=status, subject=subject, session=session)
    page = await anyio.to_thread.run_sync(
        lambda: jobs.store.list(filters, limit=limit, offset=offset)
    )
    following = None
    if offset + len(page.jobs) < page.total:
        query: dict[str, str | int] = {"limit": limit, "offset": offset + limit}
        for key, value in (("status", status), ("subject", subject), ("session", session)):
            if value is not None:
                query[key] = str(value)
        following = f"{request.url.path}?{urlencode(query)}"
    return JSONResponse(
        {
            "jobs": [job_document(job) for job in page.jobs],
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "next": following,
        }
    )


@router.get(
    "/{job_id}",
    summary="One job: status, progress, recording, model, parameters, links to its results",
    responses={404: PROBLEM},
)
async def get_job(job_id: JobId, jobs: JobsDep) -> JSONResponse:
    return JSONResponse(dict(job_document(await _job(jobs, job_id))))


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job (202), or delete a finished one and its files (204)",
    status_code=202,
    responses={204: {"description": "Deleted."}, 404: PROBLEM, 409: PROBLEM},
)
async def delete_job(job_id: JobId, jobs: JobsDep, service: ServiceDep) -> Response:
    job = await _job(jobs, job_id)
    if job.status is JobStatus.CANCELLED:
        raise JobStateError(
            f"job {job_id} is already cancelled; its files are gone and its record expires "
            f"{service.settings.job_retention_hours:g} hours after it ended"
        )
    if job.status.finished:
        await anyio.to_thread.run_sync(jobs.store.delete, job_id)
        await anyio.to_thread.run_sync(jobs.data.remove_job, job_id)
        if service.logs is not None:
            service.logs.app("job_deleted", job_id=job_id, status=job.status.value)
        return Response(status_code=204)
    cancelled = await anyio.to_thread.run_sync(jobs.store.request_cancel, job_id)
    if cancelled is None:
        raise JobNotFoundError(f"no job {job_id!r}")
    if cancelled.status is not JobStatus.CANCELLED:
        raise JobStateError(
            f"job {job_id} {cancelled.status.value} before it could be cancelled; "
            "DELETE it again to delete it"
        )
    if job.status is JobStatus.QUEUED:
        # Nobody runs it: its files go now (a running job's holder removes them as it stops).
        await anyio.to_thread.run_sync(jobs.data.remove_job, job_id)
    service.metrics.jobs_finished.labels(JobStatus.CANCELLED.value).inc()
    if service.logs is not None:
        service.logs.app(
            "job_cancelled",
            job_id=job_id,
            was=job.status.value,
            frames=cancelled.progress.frames_done,
        )
    return JSONResponse(dict(job_document(cancelled)), status_code=202)


def _download_name(job: Job, file_name: str) -> str:
    stem = FilePath(job.recording.filename).stem
    stem = _UNSAFE_IN_FILENAME.sub("_", stem).strip("._") or job.id
    return f"{stem}.{file_name}"


@router.get(
    "/{job_id}/{file_name}",
    summary="One result file of a succeeded job",
    response_class=FileResponse,
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "The file, as an attachment.",
        },
        404: PROBLEM,
        409: {**PROBLEM, "description": "The job has not succeeded (the detail says its status)."},
    },
)
async def get_result(job_id: JobId, file_name: str, jobs: JobsDep) -> FileResponse:
    if file_name not in KNOWN_RESULTS:
        raise ResultNotFoundError(
            f"no result file {file_name!r}; a job's results are {', '.join(KNOWN_RESULTS)}"
        )
    job = await _job(jobs, job_id)
    if job.status is not JobStatus.SUCCEEDED:
        raise JobStateError(
            f"job {job_id} is {job.status.value}; its results exist once it has succeeded"
        )
    path = jobs.data.results_dir(job_id) / file_name
    if file_name not in job.result_files or not path.is_file():
        raise ResultNotFoundError(
            f"job {job_id} has no {file_name}"
            + (" (bin_s was not given)" if file_name == "time_budget_bins.csv" else "")
        )
    suffix = path.suffix
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
        filename=_download_name(job, file_name),
        content_disposition_type="attachment",
    )
