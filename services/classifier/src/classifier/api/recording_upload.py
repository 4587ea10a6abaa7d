"""Receive a recording upload: a multipart body streamed to files on disk, never whole in memory.

One ``video`` part becomes one file; ``frames`` parts (an image sequence, often tens of thousands
of them) are appended to one pack file, each frame's offset, size and client filename kept in
order (one file instead of a hundred thousand: creating them cost more than parsing the body);
every other part is a small form field held in memory. ``pipeline.upload.StreamingParts`` cuts
the parts as the chunks arrive, by the clip endpoints' rules; the file writes of each megabyte or
so of chunks run together in a worker thread, so a slow disk never stalls the event loop. The
parts' bytes are hashed as they pass (the job's ``input_sha256``, computed as
``recordings.analysis`` defines it for a video and for an image sequence). Limits are checked
while streaming: the body's bytes, the frame count, each frame's bytes, the fields. The caller
owns the target folder and removes it when anything fails.
"""

from __future__ import annotations

import errno
import hashlib
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from classifier.core.errors import (
    ContentTooLargeError,
    InsufficientStorageError,
    InvalidRecordingRequestError,
)
from classifier.pipeline.upload import StreamingParts
from classifier.recordings.analysis import sequence_sha256

VIDEO_FIELD = "video"
FRAMES_FIELD = "frames"
#: The file an uploaded image sequence's frames are stored in, one after another.
PACK_FILE = "frames.pack"
#: Bytes of file writes queued before they are handed to a thread: a client that sends each
#: small frame as its own chunk would otherwise cost a thread hand-over per frame.
FLUSH_BYTES = 1024 * 1024
#: How often (in bytes written) the free space of the data folder is checked again.
FREE_SPACE_CHECK_BYTES = 64 * 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class RecordingUploadLimits:
    max_bytes: int
    max_frames: int
    max_frame_bytes: int
    #: Free bytes the data folder must keep; the upload stops with a 507 below it.
    min_free_bytes: int
    max_fields: int = 32
    max_field_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoredFrame:
    """One frame of an image sequence: the whole of ``path`` (an imported folder's file), or
    ``size`` bytes at ``offset`` of it (an upload's pack file)."""

    path: Path
    filename: str
    offset: int = 0
    size: int | None = None


def frame_spans(frames: list[StoredFrame]) -> list[tuple[int, int]] | None:
    """Each frame's (offset, size) in its pack file, or None for whole files (an import)."""
    spans = [(frame.offset, frame.size) for frame in frames if frame.size is not None]
    if not spans:
        return None
    if len(spans) != len(frames):
        raise ValueError("an image sequence mixes packed frames and whole files")
    return spans


@dataclass(slots=True)
class ReceivedRecording:
    """What the body held: form fields, and the recording's parts as stored files."""

    fields: dict[str, str] = field(default_factory=dict)
    video: Path | None = None
    video_filename: str | None = None
    frames: list[StoredFrame] = field(default_factory=list)
    sha256: str = ""
    bytes_received: int = 0


def _safe_name(filename: str) -> str:
    name = _UNSAFE_NAME.sub("_", filename).strip("._")
    return name[:200] or "recording"


def no_space_left(exc: OSError) -> bool:
    return exc.errno in _NO_SPACE


def _out_of_space() -> InsufficientStorageError:
    return InsufficientStorageError(
        "the data folder ran out of space while receiving the upload; free some space (or "
        "delete finished jobs) and submit again"
    )


def _video_and_frames() -> InvalidRecordingRequestError:
    return InvalidRecordingRequestError(
        f"give either one {VIDEO_FIELD!r} part or {FRAMES_FIELD!r} parts, not both"
    )


class _DiskWriter:
    """The file operations of one chunk, queued by the parser's callbacks, run in a thread."""

    def __init__(self, directory: Path, min_free_bytes: int) -> None:
        self.directory = directory
        self.min_free_bytes = min_free_bytes
        self._pending: list[tuple[str, object]] = []
        self._pending_bytes = 0
        self._handle: BinaryIO | None = None
        self._since_space_check = 0

    def open(self, path: Path) -> None:
        self._pending.append(("open", path))

    def write(self, data: bytes) -> None:
        self._pending.append(("write", data))
        self._pending_bytes += len(data)

    def close(self) -> None:
        self._pending.append(("close", None))

    def _apply(self, pending: list[tuple[str, object]]) -> None:
        for operation, argument in pending:
            if operation == "open":
                assert isinstance(argument, Path)
                argument.parent.mkdir(parents=True, exist_ok=True)
                self._handle = argument.open("wb")
            elif operation == "write":
                assert self._handle is not None
                assert isinstance(argument, bytes)
                self._handle.write(argument)
                self._since_space_check += len(argument)
            elif self._handle is not None:
                self._handle.close()
                self._handle = None
        if self._since_space_check >= FREE_SPACE_CHECK_BYTES:
            self._since_space_check = 0
            if shutil.disk_usage(self.directory).free < self.min_free_bytes:
                raise _out_of_space()

    async def flush(self, *, at_least: int = 0) -> None:
        """Run the queued operations in a thread, once ``at_least`` bytes of writes wait."""
        if not self._pending or self._pending_bytes < at_least:
            return
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            await anyio.to_thread.run_sync(self._apply, pending)
        except OSError as exc:
            if no_space_left(exc):
                raise _out_of_space() from None
            raise

    def abandon(self) -> None:
        """Close whatever file is still open (the caller then removes the folder)."""
        self._pending, self._pending_bytes = [], 0
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class _PartCollector:
    """The parser's sink: sort each part into a field, the video, or the next frame."""

    def __init__(
        self,
        writer: _DiskWriter,
        limits: RecordingUploadLimits,
        on_field: Callable[[str, str], None] | None,
    ) -> None:
        self.writer = writer
        self.limits = limits
        self.on_field = on_field
        self.received = ReceivedRecording()
        self.digest = hashlib.sha256()  # of the video, or of the frame being received
        self.frame_digests: list[str] = []
        self._kind: str | None = None  # "field", "video" or "frame" for the current part
        self._name = ""
        self._field_value = bytearray()
        self._part_bytes = 0
        self._pack: Path | None = None  # the image sequence's pack file, once a frame arrived
        self._pack_bytes = 0
        self._frame_filename = ""

    def begin(self, name: str, filename: str | None) -> None:
        self._name = name
        self._part_bytes = 0
        received = self.received
        if name == VIDEO_FIELD:
            if received.video is not None:
                raise InvalidRecordingRequestError("the upload has more than one video part")
            if self._pack is not None:
                raise _video_and_frames()
            self._kind = "video"
            shown = Path(filename or "").name or "recording"
            # Stored under (a safe form of) its own name: the decoder's messages name the file.
            received.video = self.writer.directory / "video" / _safe_name(shown)
            received.video_filename = shown
            self.writer.open(received.video)
        elif name == FRAMES_FIELD:
            if len(received.frames) >= self.limits.max_frames:
                raise ContentTooLargeError(
                    f"the image sequence has more than {self.limits.max_frames} frames "
                    "(limit max_sequence_frames)"
                )
            if received.video is not None:
                raise _video_and_frames()
            self._kind = "frame"
            self.digest = hashlib.sha256()
            if self._pack is None:
                self._pack = self.writer.directory / PACK_FILE
                self.writer.open(self._pack)
            index = len(received.frames)
            # Path(filename).name, without a Path object for each of a hundred thousand parts.
            self._frame_filename = (filename or "").rsplit("/", 1)[-1] or f"frame {index}"
        else:
            if len(received.fields) >= self.limits.max_fields:
                raise ContentTooLargeError(
                    f"the upload has more than {self.limits.max_fields} form fields"
                )
            if name in received.fields:
                raise InvalidRecordingRequestError(f"the field {name!r} is given twice")
            self._kind = "field"
            self._field_value.clear()

    def data(self, piece: bytes) -> None:
        self._part_bytes += len(piece)
        if self._kind == "field":
            if self._part_bytes > self.limits.max_field_bytes:
                raise ContentTooLargeError(
                    f"the field {self._name!r} is larger than {self.limits.max_field_bytes} bytes"
                )
            self._field_value += piece
            return
        if self._kind == "frame" and self._part_bytes > self.limits.max_frame_bytes:
            raise ContentTooLargeError(
                f"frame {len(self.received.frames)} ({self._frame_filename}) is larger than "
                f"{self.limits.max_frame_bytes} bytes (limit max_sequence_frame_bytes)"
            )
        self.digest.update(piece)
        self.writer.write(piece)

    def end(self) -> None:
        if self._kind == "field":
            try:
                value = self._field_value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRecordingRequestError(
                    f"the field {self._name!r} is not UTF-8 text"
                ) from None
            self.received.fields[self._name] = value
            if self.on_field is not None:
                self.on_field(self._name, value)
        elif self._kind == "video":
            self.writer.close()
        elif self._kind == "frame":
            assert self._pack is not None
            self.received.frames.append(
                StoredFrame(self._pack, self._frame_filename, self._pack_bytes, self._part_bytes)
            )
            self._pack_bytes += self._part_bytes
            self.frame_digests.append(self.digest.hexdigest())
        self._kind = None

    def finish(self) -> None:
        """The closing delimiter has been read: close the pack file, if any."""
        if self._pack is not None:
            self.writer.close()


async def receive_recording(
    chunks: AsyncIterator[bytes],
    boundary: bytes,
    directory: Path,
    limits: RecordingUploadLimits,
    *,
    on_field: Callable[[str, str], None] | None = None,
) -> ReceivedRecording:
    """Stream the multipart body ``chunks`` into ``directory``.

    ``on_field(name, value)`` sees each form field as soon as it has arrived, so a bad parameter
    sent before the recording stops the upload at once instead of after gigabytes.
    """
    writer = _DiskWriter(directory, limits.min_free_bytes)
    collector = _PartCollector(writer, limits, on_field)
    parser = StreamingParts(boundary, collector)
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limits.max_bytes:
                raise ContentTooLargeError(
                    f"the upload is larger than {limits.max_bytes} bytes "
                    "(limit max_recording_bytes)"
                )
            parser.write(chunk)
            await writer.flush(at_least=FLUSH_BYTES)
        parser.close()
        collector.finish()
        await writer.flush()
    except BaseException:
        writer.abandon()
        raise
    result = collector.received
    # The same input hash the command line computes for the same video or image files.
    result.sha256 = (
        sequence_sha256(collector.frame_digests) if result.frames else collector.digest.hexdigest()
    )
    result.bytes_received = received
    return result
