"""Where a recording's frames come from: a video file (PyAV) or an image sequence (Pillow).

Both yield frames one at a time, already converted to the manifest's size and colour mode. An
image sequence always goes through ``pipeline.decode``, the code ``/v1`` classify uses, so a PNG
gets the same pixels however it arrives. A video does too with ``conversion="reference"``; by
default (``"luma"``) a YUV video for a grey ("L") bilinear model is scaled by FFmpeg straight
from its luma plane, range-stretched (docs/benchmarks.md: within 0.03 of the reference on the
tensor, ten times cheaper). Nothing here holds more than one frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

import av
import av.error
import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange, VideoReformatter
from PIL import Image

from classifier.core.errors import (
    ContentTooLargeError,
    CorruptRecordingError,
    FrameTooLargeError,
    MixedFrameSizesError,
    NoDecodableFramesError,
    NotAVideoError,
    UndecodableFrameError,
    UnsupportedCodecError,
    UnsupportedFrameFormatError,
)
from classifier.model.manifest import InputSpec
from classifier.pipeline.decode import (
    DecodeLimits,
    PixelArray,
    conform_image,
    decode_frame,
    decode_png_as,
    open_frame,
    png_header,
    png_size,
)
from classifier.pipeline.upload import UploadedFrame
from classifier.recordings.overlap import decoded_ahead

#: How a video frame becomes the model's pixels: "reference" is /v1's Pillow conversion (RGB, then
#: the manifest's mode and filter); "luma" scales a YUV frame's luma plane with FFmpeg when the
#: model takes grey bilinear frames, and falls back to the reference for anything else.
Conversion = Literal["luma", "reference"]
CONVERSIONS: tuple[Conversion, ...] = ("luma", "reference")

#: Decoded video frames handed from the packet-feeding thread at a time, and chunks held ahead
#: (FFmpeg's frames, full size: 8 x 4 640x480 frames is 15 MB of YUV).
RAW_CHUNK = 8
RAW_DEPTH = 4

#: The default pixel limit of one frame, the same as the service's ``max_frame_pixels``.
DEFAULT_LIMITS = DecodeLimits(max_frame_pixels=4096 * 4096)

# FFmpeg opens single images through these demuxers; a still image is not a recording.
_IMAGE_DEMUXERS = ("image2", "_pipe")
# Leading bytes of the containers we accept, to tell a damaged video from something else.
_CONTAINER_MAGIC = (
    (4, b"ftyp"),  # MP4, MOV
    (4, b"moov"),
    (4, b"mdat"),
    (0, b"RIFF"),  # AVI
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska, WebM
)


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What is known about a recording. ``frames`` is what decoding yielded (None before);
    ``fps`` and ``duration_s`` come from the header until decoding has measured them."""

    filename: str
    frames: int | None
    fps: float | None
    duration_s: float | None
    width: int
    height: int
    codec: str
    #: Frames the container says it holds, when it says (a progress estimate, never trusted).
    declared_frames: int | None = None


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One frame: its 0-based position, its start time in seconds from the first frame, and its
    pixels in the manifest's size and colour mode. ``duration_s`` is how long it is shown when
    the source says (a video's packet duration), else None."""

    index: int
    time_s: float
    pixels: PixelArray
    duration_s: float | None = None


class FrameSource(Protocol):
    """A recording as ``analyse_recording`` reads it."""

    @property
    def info(self) -> RecordingInfo: ...

    def frames(self, spec: InputSpec) -> Iterator[DecodedFrame]: ...

    def stretches(self, count: int) -> list[Stretch] | None:
        """The recording cut into at most ``count`` stretches that decode on their own, in
        order, for several processes at once (recordings/parallel.py); None: not splittable."""
        ...

    def frames_of(self, spec: InputSpec, stretch: Stretch) -> Iterator[DecodedFrame]:
        """One stretch's frames, as ``frames`` gives them (``index`` counts within it)."""
        ...


def _looks_like_container(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(16)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _CONTAINER_MAGIC)


def _open_container(path: Path) -> av.container.InputContainer:
    """Open with PyAV, turning FFmpeg's failures into our errors from the file's own bytes."""
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        if path.stat().st_size and _looks_like_container(path):
            raise CorruptRecordingError(
                f"{path.name} looks like a video container but FFmpeg cannot open it "
                f"(truncated or damaged: {exc.strerror})"
            ) from None
        raise NotAVideoError(
            f"{path.name} is not a video FFmpeg can open (MP4, MOV, AVI, MKV, WebM, ...)"
        ) from None
    name = container.format.name
    if any(name == tag or name.endswith(tag) for tag in _IMAGE_DEMUXERS):
        container.close()
        raise NotAVideoError(
            f"{path.name} is a still image ({name}), not a video; send an image sequence as "
            "frames with an fps"
        )
    if not container.streams.video:
        container.close()
        raise NotAVideoError(f"{path.name} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        tag = getattr(stream, "codec_tag", "") or "unknown"
        container.close()
        raise UnsupportedCodecError(
            f"{path.name} has a video stream in a codec FFmpeg cannot decode ({tag})"
        )
    return container


def _header_info(filename: str, container: av.container.InputContainer) -> RecordingInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    duration: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    declared = stream.frames or None
    if declared is None and fps and duration:
        declared = round(fps * duration)
    context = stream.codec_context
    return RecordingInfo(
        filename=filename,
        frames=None,
        fps=fps,
        duration_s=duration,
        width=int(context.width),
        height=int(context.height),
        codec=str(context.name),
        declared_frames=declared,
    )


def probe_video(path: Path, filename: str | None = None) -> RecordingInfo:
    """Read a video's header only; NotAVideoError / UnsupportedCodecError come from its bytes."""
    with _open_container(path) as container:
        return _header_info(filename or path.name, container)


class VideoSource:
    """A video file decoded with PyAV (its wheels carry FFmpeg), frame by frame.

    A frame's time is its timestamp (pts x time base) less the first frame's, so variable frame
    rates keep their real times. Decoding that fails part-way, or a file that ends before the
    frames its container lists, raises CorruptRecordingError naming the frame where decoding
    stopped: results for part of a recording would misstate its time budget.
    """

    def __init__(
        self,
        path: Path,
        filename: str | None = None,
        *,
        limits: DecodeLimits = DEFAULT_LIMITS,
        conversion: Conversion = "luma",
        decode_threads: int | None = None,
    ) -> None:
        if conversion not in CONVERSIONS:
            raise ValueError(f"conversion must be one of {CONVERSIONS}, got {conversion!r}")
        self.path = path
        self.limits = limits
        self.conversion = conversion
        #: FFmpeg's decoding threads (frame and slice threading): every core by default, since
        #: libx264 writes one slice a frame and FFmpeg's default barely threads such a stream.
        self.decode_threads = decode_threads or os.cpu_count() or 1
        self._info = probe_video(path, filename)
        if self._info.width * self._info.height > limits.max_frame_pixels:
            raise FrameTooLargeError(
                f"{self._info.filename} is {self._info.width}x{self._info.height} pixels a "
                f"frame, above the limit of {limits.max_frame_pixels} pixels"
            )

    @property
    def info(self) -> RecordingInfo:
        return self._info

    def _open_for_decoding(self, threads: int) -> av.container.InputContainer:
        container = _open_container(self.path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        return container

    def _converter(self, spec: InputSpec) -> Callable[[VideoFrame], PixelArray]:
        """Frame to the model's pixels: the luma path when it applies, else the reference."""
        # One reformatter for the stream: frame.to_ndarray(format=...) would set up FFmpeg's
        # scaler anew for every frame (2.5 ms a 240x240 frame, not 0.16).
        reformatter = VideoReformatter()
        luma = self._takes_luma(spec)

        def convert(frame: VideoFrame) -> PixelArray:
            if luma and _is_yuv(frame):
                return _scaled_luma(reformatter, frame, spec)
            # RGB, as a colour PNG upload decodes, then /v1's conversion.
            rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
            return conform_image(Image.fromarray(rgb), spec)

        return convert

    def _takes_luma(self, spec: InputSpec) -> bool:
        """Whether a YUV frame goes the luma path: a grey, bilinear model and conversion "luma"."""
        grey_bilinear = spec.color_mode == "L" and spec.resize_filter == "bilinear"
        return self.conversion == "luma" and grey_bilinear

    def _reads_in_place(self, spec: InputSpec) -> bool:
        """Whether frames are read straight from their luma plane (no scaling, no conversion)."""
        size = (self._info.width, self._info.height)
        return self._takes_luma(spec) and size == (spec.width, spec.height)

    def frames(self, spec: InputSpec) -> Generator[DecodedFrame, None, None]:
        name = self._info.filename
        with self._open_for_decoding(self.decode_threads) as container:
            stream = container.streams.video[0]
            convert = self._converter(spec)
            time_base = stream.time_base or Fraction(1, 1)
            tb_num, tb_den = time_base.numerator, time_base.denominator
            fallback_step = 1.0 / self._info.fps if self._info.fps else None
            first_pts: int | None = None
            index = 0
            last_time = 0.0
            file_size = self.path.stat().st_size
            read_to = 0  # the end of the furthest packet the demuxer has read, in bytes

            def decoded() -> Generator[VideoFrame, None, None]:
                nonlocal read_to
                for packet in container.demux(stream):
                    if packet.pos is not None and packet.pos >= 0:
                        read_to = max(read_to, packet.pos + packet.size)
                    yield from packet.decode()

            # A frame to be scaled or colour-converted costs a tenth of a millisecond or more
            # here, during which FFmpeg's frame threads, fed from this loop, would sit idle:
            # packets are then fed on a thread of their own, a few frames ahead. A frame read
            # straight from its luma plane costs less than the hand-over between threads.
            raw = decoded() if self._reads_in_place(spec) else decoded_ahead(
                decoded(), chunk=RAW_CHUNK, depth=RAW_DEPTH
            )  # fmt: skip
            try:
                for frame in raw:
                    if frame.pts is None:
                        if fallback_step is None:
                            raise CorruptRecordingError(
                                f"{name}: frame {index} has no timestamp and the stream no rate"
                            )
                        time_s = index * fallback_step
                    else:
                        if first_pts is None:
                            first_pts = frame.pts
                        # Integer true division rounds the exact ratio once, as Fraction's
                        # float() does, at a fraction of the cost per frame.
                        time_s = (frame.pts - first_pts) * tb_num / tb_den
                    if index and time_s <= last_time:
                        # A repeated or backwards timestamp (a damaged file): frames keep their
                        # decoding order, and times must increase for bouts to have a length.
                        time_s = last_time + 1e-6
                    duration = frame.duration * tb_num / tb_den if frame.duration else None
                    yield DecodedFrame(index, time_s, convert(frame), duration)
                    last_time = time_s
                    index += 1
            except av.error.FFmpegError as exc:
                if index == 0:
                    raise NoDecodableFramesError(
                        f"{name} has no decodable video frames: {exc.strerror}"
                    ) from None
                declared = stream.frames or 0
                if declared and index < declared and read_to >= file_size:
                    # The demuxer reached the end of the file: with frame threads, FFmpeg says a
                    # cut-off last packet is invalid data instead of ending quietly.
                    raise CorruptRecordingError(
                        f"{name} is truncated: decoding stopped at frame {index} (after "
                        f"{last_time:.3f} s), but the container lists {declared} frames"
                    ) from None
                raise CorruptRecordingError(
                    f"{name}: decoding stopped at frame {index} (after {last_time:.3f} s): "
                    f"{exc.strerror}"
                ) from None
            finally:
                # Stop the feeding thread before the container closes under it.
                raw.close()
        declared = stream.frames or 0
        if index == 0:
            raise NoDecodableFramesError(f"{name} has no decodable video frames")
        if declared and index < declared:
            raise CorruptRecordingError(
                f"{name} is truncated: decoding stopped at frame {index} (after "
                f"{last_time:.3f} s), but the container lists {declared} frames"
            )

    def stretches(self, count: int) -> list[Stretch] | None:
        """Up to ``count`` stretches of the video, each starting at a keyframe, for decoding
        in parallel (``frames_of``); None when the file cannot be split so (no timestamps, no
        duration, a single keyframe). Reads the first frame and a packet after each seek."""
        if count < 2:
            return None
        with self._open_for_decoding(1) as container:
            stream = container.streams.video[0]
            try:
                first = next(container.decode(stream), None)
            except av.error.FFmpegError:
                return None
            time_base = stream.time_base or Fraction(1, 1)
            length = stream.duration
            if not length and container.duration:  # microseconds, for the whole container
                length = int(container.duration * time_base.denominator) // (
                    1_000_000 * time_base.numerator
                )
            if first is None or first.pts is None or not length or length <= 0:
                return None
            origin = first.pts
            starts: list[int] = []
            for part in range(1, count):
                target = origin + length * part // count
                try:
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                    packet = next(container.demux(stream), None)
                except av.error.FFmpegError:
                    return None
                if packet is None or packet.pts is None or not packet.is_keyframe:
                    return None
                if packet.pts > (starts[-1] if starts else origin):
                    starts.append(packet.pts)
        if not starts:
            return None
        bounds: list[int | None] = [None, *starts, None]
        listed = stream.frames or None
        return [
            VideoStretch(origin, bounds[part], bounds[part + 1], listed)
            for part in range(len(starts) + 1)
        ]

    def frames_of(self, spec: InputSpec, stretch: Stretch) -> Generator[DecodedFrame, None, None]:
        """The frames of one stretch (from ``stretches``), decoded on one thread: those shown
        from its keyframe up to the next stretch's. Raises IrregularStretchError where the file
        does not bear splitting (a frame without a timestamp, times out of order, a seek that
        missed its keyframe, a decoding error); the caller then decodes the whole file in order,
        which names any real fault as ``frames`` does."""
        if not isinstance(stretch, VideoStretch):
            raise TypeError(f"not a stretch of a video: {stretch!r}")
        with self._open_for_decoding(1) as container:
            stream = container.streams.video[0]
            convert = self._converter(spec)
            time_base = stream.time_base or Fraction(1, 1)
            tb_num, tb_den = time_base.numerator, time_base.denominator
            start, end = stretch.start, stretch.end
            last: int | None = None
            count = 0
            try:
                if start is not None:
                    container.seek(start, stream=stream, backward=True, any_frame=False)
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        pts = frame.pts
                        if pts is None:
                            raise IrregularStretchError("a frame without a timestamp")
                        if start is not None and pts < start:
                            continue  # before the keyframe: the stretch before shows it
                        if end is not None and pts >= end:
                            if not count:
                                raise IrregularStretchError(f"no frame in [{start}, {end})")
                            return
                        if last is None and start is not None and pts != start:
                            raise IrregularStretchError(f"began at {pts}, not at {start}")
                        if last is not None and pts <= last:
                            raise IrregularStretchError(f"timestamp {pts} after {last}")
                        last = pts
                        time_s = (pts - stretch.origin) * tb_num / tb_den
                        duration = frame.duration * tb_num / tb_den if frame.duration else None
                        yield DecodedFrame(count, time_s, convert(frame), duration)
                        count += 1
            except av.error.FFmpegError as exc:
                raise IrregularStretchError(f"decoding failed: {exc.strerror}") from None
            if not count:
                raise IrregularStretchError("no frames")


@dataclass(frozen=True, slots=True)
class VideoStretch:
    """Frames shown from ``start`` (a keyframe's timestamp; None: the first frame) up to
    ``end`` (the next stretch's start; None: the last frame). ``origin``: the first frame's
    timestamp, from which every frame's time is counted; ``listed``: the frames the container
    lists, when it does (fewer decoded means a truncated file)."""

    origin: int
    start: int | None
    end: int | None
    listed: int | None = None


@dataclass(frozen=True, slots=True)
class SequenceStretch:
    """Frames ``start`` to ``end`` (exclusive) of an image sequence."""

    start: int
    end: int


#: Part of a recording decoded on its own: ``FrameSource.stretches`` and ``frames_of``.
Stretch = VideoStretch | SequenceStretch


def _is_yuv(frame: VideoFrame) -> bool:
    name = str(frame.format.name)
    return name.startswith(("yuv", "nv12", "nv21"))


def _is_limited_range(frame: VideoFrame) -> bool:
    """libx264 leaves the range unspecified, and FFmpeg then takes plain yuv formats as limited
    (luma 16-235; only the yuvj formats are full range): the same rule here."""
    if frame.color_range == ColorRange.JPEG:
        return False
    return frame.color_range == ColorRange.MPEG or not str(frame.format.name).startswith("yuvj")


#: Limited-range luma (16-235) stretched to Pillow's 0-255 grey, rounded as swscale rounds it.
_LIMITED_TO_FULL: PixelArray = np.clip(
    np.round((np.arange(256, dtype=np.float64) - 16) * 255 / 219), 0, 255
).astype(np.uint8)


def _scaled_luma(reformatter: VideoReformatter, frame: VideoFrame, spec: InputSpec) -> PixelArray:
    """The luma plane scaled bilinearly to the model's size and stretched to Pillow's 0-255 grey
    in one swscale pass (its grey output is the luma plane; no colour conversion is done).

    A frame already the model's size needs no scaling: its luma plane is read in place and
    range-stretched through a table, the same values swscale gives, without swscale's set-up
    and a new frame for every frame (a third of the work at 64x64).
    """
    if frame.width == spec.width and frame.height == spec.height:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(
            plane.height, plane.line_size
        )
        luma = rows[:, : plane.width]
        if _is_limited_range(frame):
            stretched: PixelArray = _LIMITED_TO_FULL[luma]
            return stretched
        return np.array(luma, dtype=np.uint8)  # a copy: the plane's buffer is reused
    small = reformatter.reformat(
        frame,
        spec.width,
        spec.height,
        format="gray",
        interpolation="BILINEAR",
        src_color_range="MPEG" if _is_limited_range(frame) else "JPEG",
        dst_color_range="JPEG",
    )
    pixels: PixelArray = np.ascontiguousarray(small.to_ndarray(), dtype=np.uint8)
    return pixels


class IrregularStretchError(Exception):
    """A stretch of a video could not be decoded on its own (see ``VideoSource.frames_of``):
    not the recording's fault as such, and never shown to a client."""


#: A frame's place in a file holding many: (offset, size) in bytes.
Span = tuple[int, int]


class ImageSequenceSource:
    """Image files in order (one frame each), decoded by ``decode_frame`` with its limits.

    Frame ``i`` starts at ``i / fps``. Every frame must have the first frame's size: a camera
    does not change resolution mid-recording, so a different size means a file from elsewhere.
    ``spans``, when given, puts frame ``i`` at ``spans[i]`` (offset, size) inside ``paths[i]``:
    an uploaded sequence is stored as one pack file, not tens of thousands of small ones.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        filenames: Sequence[str],
        fps: float,
        *,
        limits: DecodeLimits = DEFAULT_LIMITS,
        name: str | None = None,
        spans: Sequence[Span] | None = None,
    ) -> None:
        if len(paths) != len(filenames) or (spans is not None and len(spans) != len(paths)):
            raise ValueError("paths, filenames and spans differ in length")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.paths = list(paths)
        self.filenames = list(filenames)
        self.spans = None if spans is None else list(spans)
        self.fps = float(fps)
        self.limits = limits
        if not self.paths:
            raise NoDecodableFramesError("the image sequence has no frames")
        with _FrameReader(self.paths, self.spans) as reader:
            width, height = self._size_of(self._uploaded(reader, 0))
        self._info = RecordingInfo(
            filename=name or (self.filenames[0] if len(self.filenames) == 1 else "frames"),
            frames=None,
            fps=self.fps,
            duration_s=len(self.paths) / self.fps,
            width=width,
            height=height,
            codec="image-sequence",
            declared_frames=len(self.paths),
        )

    @property
    def info(self) -> RecordingInfo:
        return self._info

    def _describe(self, index: int) -> str:
        return f"frame {index} ({self.filenames[index]})"

    def _uploaded(self, reader: _FrameReader, index: int) -> UploadedFrame:
        return UploadedFrame(index, self.filenames[index], reader.read(index))

    def _size_of(self, frame: UploadedFrame) -> tuple[int, int]:
        """The frame's size from its header (nothing decoded yet): a PNG's IHDR read directly,
        anything else through Pillow's header parser."""
        size = png_size(frame.data)
        if size is not None:
            return size
        with _as_recording_error(), open_frame(frame) as image:
            width, height = image.size
        return int(width), int(height)

    def frames(self, spec: InputSpec) -> Iterator[DecodedFrame]:
        return self.frames_of(spec, SequenceStretch(0, len(self.paths)))

    def stretches(self, count: int) -> list[Stretch] | None:
        """The sequence cut into ``count`` runs of frames of (nearly) equal length."""
        frames = len(self.paths)
        if count < 2 or frames < count:
            return None
        bounds = [frames * part // count for part in range(count + 1)]
        return [SequenceStretch(bounds[part], bounds[part + 1]) for part in range(count)]

    def frames_of(self, spec: InputSpec, stretch: Stretch) -> Iterator[DecodedFrame]:
        """Frames ``stretch.start`` to ``stretch.end``, each checked and decoded as in
        ``frames``: the errors name the same frame wherever the stretch begins."""
        if not isinstance(stretch, SequenceStretch):
            raise TypeError(f"not a stretch of an image sequence: {stretch!r}")
        expected = (self._info.width, self._info.height)
        duration = 1.0 / self.fps
        with _FrameReader(self.paths, self.spans) as reader:
            for index in range(stretch.start, stretch.end):
                # A PNG's header is read once, for its size and for libspng; only a frame that
                # needs Pillow pays for more (17 us a frame here, a fifth of the decoding).
                data = reader.read(index)
                header = png_header(data)
                size = (
                    (header[0], header[1])
                    if header is not None
                    else self._size_of(UploadedFrame(index, self.filenames[index], data))
                )
                if size != expected:
                    raise MixedFrameSizesError(
                        f"{self._describe(index)} is {size[0]}x{size[1]}, but the sequence "
                        f"began at {expected[0]}x{expected[1]} (frame 0, {self.filenames[0]})"
                    )
                pixels = None if header is None else decode_png_as(data, header, spec)
                if pixels is None:
                    frame = UploadedFrame(index, self.filenames[index], data)
                    with _as_recording_error():
                        pixels = decode_frame(frame, spec, self.limits)
                yield DecodedFrame(index, index / self.fps, pixels, duration)


class _FrameReader:
    """Reads frame ``i``: the whole of ``paths[i]``, or its span of a pack file kept open."""

    def __init__(self, paths: list[Path], spans: list[Span] | None) -> None:
        self.paths, self.spans = paths, spans
        self._open: tuple[Path, int] | None = None  # the pack file's path and descriptor

    def read(self, index: int) -> bytes:
        path = self.paths[index]
        if self.spans is None:
            return path.read_bytes()
        offset, size = self.spans[index]
        if self._open is None or self._open[0] != path:
            self.close()
            self._open = (path, os.open(path, os.O_RDONLY))
        data = os.pread(self._open[1], size, offset)
        if len(data) != size:
            raise CorruptRecordingError(
                f"frame {index}: its stored bytes end early ({len(data)} of {size} bytes)"
            )
        return data

    def close(self) -> None:
        if self._open is not None:
            os.close(self._open[1])
            self._open = None

    def __enter__(self) -> _FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _as_recording_error() -> Iterator[None]:
    """decode_frame's errors (which name the frame) as the recording errors a job reports."""
    try:
        yield
    except UnsupportedFrameFormatError as exc:
        raise UnsupportedCodecError(exc.detail) from None
    except UndecodableFrameError as exc:
        raise CorruptRecordingError(exc.detail) from None
    except ContentTooLargeError as exc:
        raise FrameTooLargeError(exc.detail) from None


def with_frames(info: RecordingInfo, frames: int, duration_s: float) -> RecordingInfo:
    """The info once decoding has counted the frames and measured the duration; a stream that
    declared no rate gets the mean rate it was decoded at."""
    fps = info.fps if info.fps else (frames / duration_s if duration_s > 0 else None)
    return replace(info, frames=frames, duration_s=duration_s, fps=fps)
