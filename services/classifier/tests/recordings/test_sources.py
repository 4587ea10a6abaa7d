"""Recording sources: PyAV videos and image folders, their frame times, pixels and bad input."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from PIL import Image

from behaviour_clips import generate_recording, to_rgb
from classifier.core.config import DEFAULT_MODEL_DIR
from classifier.core.errors import (
    CorruptRecordingError,
    FrameTooLargeError,
    MixedFrameSizesError,
    NoDecodableFramesError,
    NotAVideoError,
    RecordingError,
    UnsupportedCodecError,
)
from classifier.model.manifest import load_manifest
from classifier.model.runtime import SequenceModel
from classifier.pipeline.decode import DecodeLimits, decode_frame
from classifier.pipeline.upload import UploadedFrame
from classifier.recordings.analysis import AnalysisParameters, analyse_recording
from classifier.recordings.source import (
    CONVERSIONS,
    ImageSequenceSource,
    VideoSource,
    probe_video,
)
from tests.recordings.media import encode_video, garble, png_bytes, truncate, write_frames

SPEC = load_manifest(DEFAULT_MODEL_DIR).input  # 64x64 grayscale, bilinear
LIMITS = DecodeLimits(max_frame_pixels=4096 * 4096)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    pixels, _ = generate_recording(21, 60, size=64)
    return pixels


@pytest.fixture(scope="module")
def faststart_mp4(frames: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 with its index (moov) before the frames, as web-ready files have it."""
    return encode_video(tmp_path_factory.mktemp("v") / "fast.mp4", frames, faststart=True)


def test_a_video_yields_every_frame_with_its_timestamp(faststart_mp4: Path) -> None:
    source = VideoSource(faststart_mp4)
    info = source.info
    assert (info.filename, info.codec, info.width, info.height) == ("fast.mp4", "h264", 64, 64)
    assert info.fps == pytest.approx(30.0)
    assert info.frames is None  # known only after decoding
    decoded = list(source.frames(SPEC))
    assert [frame.index for frame in decoded] == list(range(60))
    assert [frame.time_s for frame in decoded] == pytest.approx([i / 30 for i in range(60)])
    assert all(
        frame.pixels.shape == (64, 64) and frame.pixels.dtype == np.uint8 for frame in decoded
    )


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "webm"])
def test_variable_frame_rate_keeps_each_frames_own_time(
    frames: np.ndarray, tmp_path: Path, suffix: str
) -> None:
    times = [0.0, 0.05, 0.2, 0.25, 0.5, *(0.5 + 0.04 * i for i in range(1, 25))]
    codec = "libvpx-vp9" if suffix == "webm" else "libx264"
    path = encode_video(
        tmp_path / f"vfr.{suffix}", frames[: len(times)], times_s=times, codec=codec
    )
    decoded = list(VideoSource(path).frames(SPEC))
    assert len(decoded) == len(times)
    assert [frame.time_s for frame in decoded] == pytest.approx(times, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "codec", "decoded_as"),
    [
        ("lab.avi", "mpeg4", "mpeg4"),
        ("lab.mov", "libx264", "h264"),
        ("lab.mkv", "libx264", "h264"),
        ("lab.webm", "libvpx-vp9", "vp9"),
    ],
)
def test_common_containers_and_codecs_decode(
    frames: np.ndarray, tmp_path: Path, name: str, codec: str, decoded_as: str
) -> None:
    path = encode_video(tmp_path / name, frames[:30], codec=codec)
    source = VideoSource(path)
    assert source.info.codec == decoded_as
    assert len(list(source.frames(SPEC))) == 30


def test_video_frames_get_the_pixels_v1_gives_the_same_image(tmp_path: Path) -> None:
    # 96x96 colour frames: converted to grayscale and resized to 64x64 on the way in.
    pixels, _ = generate_recording(22, 12, size=96)
    path = encode_video(tmp_path / "colour.mp4", to_rgb(pixels))
    with av.open(str(path)) as container:
        decoded_rgb = [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for f in container.decode(video=0)
        ]
    reference = VideoSource(path, conversion="reference")
    ours = [frame.pixels for frame in reference.frames(SPEC)]
    assert len(ours) == len(decoded_rgb) == 12
    for index, (rgb, mine) in enumerate(zip(decoded_rgb, ours, strict=True)):
        upload = UploadedFrame(index, f"{index}.png", png_bytes(rgb))
        assert np.array_equal(decode_frame(upload, SPEC, LIMITS), mine)


#: How far the luma path (FFmpeg scaling the luma plane, range-stretched) may stray from the
#: reference conversion on the model's tensor (pixels / 255): measured 0.0235 max, 0.0018 mean.
LUMA_MAX_DIFFERENCE = 0.03
LUMA_MEAN_DIFFERENCE = 0.003


@pytest.mark.parametrize("size", [64, 240])
def test_the_luma_path_stays_within_tolerance_of_the_reference_conversion(
    tmp_path: Path, size: int
) -> None:
    pixels, _ = generate_recording(23, 48, size=size)
    path = encode_video(tmp_path / "grey.mp4", pixels)
    fast = np.stack([frame.pixels for frame in VideoSource(path).frames(SPEC)])
    slow = VideoSource(path, conversion="reference")
    reference = np.stack([frame.pixels for frame in slow.frames(SPEC)])
    assert fast.shape == reference.shape == (48, 64, 64)
    difference = np.abs(fast.astype(np.float64) - reference) / 255.0
    assert difference.max() <= LUMA_MAX_DIFFERENCE
    assert difference.mean() <= LUMA_MEAN_DIFFERENCE


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
def test_a_frame_of_the_models_size_reads_its_luma_plane_as_swscale_would_give_it(
    tmp_path: Path, pix_fmt: str
) -> None:
    # No scaling is needed, so the plane is range-stretched through a table instead of swscale:
    # the pixels must be swscale's, for limited-range (yuv420p) and full-range (yuvj420p) luma.
    pixels, _ = generate_recording(29, 30, size=64)
    path = tmp_path / f"{pix_fmt}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 64, 64, pix_fmt
        for frame in pixels:
            grey = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            container.mux(stream.encode(grey.reformat(format=pix_fmt)))
        container.mux(stream.encode())
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        expected = [
            reformatter.reformat(
                frame, 64, 64, format="gray", interpolation="BILINEAR",
                src_color_range="JPEG" if pix_fmt == "yuvj420p" else "MPEG",
                dst_color_range="JPEG",
            ).to_ndarray()
            for frame in container.decode(video=0)
        ]  # fmt: skip
    ours = [frame.pixels for frame in VideoSource(path).frames(SPEC)]
    assert len(ours) == len(expected) == 30
    for mine, theirs in zip(ours, expected, strict=True):
        assert mine.flags.c_contiguous
        assert mine.dtype == np.uint8
        assert np.array_equal(mine, theirs)


def test_a_scaled_video_closed_part_way_stops_its_packet_feeding_thread(tmp_path: Path) -> None:
    # Frames that need scaling are decoded on a thread of their own, ahead of the conversion.
    pixels, _ = generate_recording(31, 120, size=240)
    path = encode_video(tmp_path / "big.mp4", pixels)
    frames = VideoSource(path).frames(SPEC)
    first = [next(frames) for _ in range(3)]
    assert "recording-decoder" in {thread.name for thread in threading.enumerate()}
    frames.close()  # a cancelled analysis: the thread is joined before the file closes
    assert [frame.index for frame in first] == [0, 1, 2]
    assert "recording-decoder" not in {thread.name for thread in threading.enumerate()}
    assert len(list(VideoSource(path).frames(SPEC))) == 120  # and the file reads again whole


@pytest.mark.parametrize("size", [64, 240])
def test_the_luma_path_keeps_frame_accuracy_within_half_a_point_of_the_reference(
    tmp_path: Path, size: int, bundled_model: SequenceModel
) -> None:
    # 100 s of held-out recording 9000 (make evaluate's first seed), rendered at the size
    # make evaluate renders (240: scaled by swscale) and at the model's (64: read in place),
    # H.264 crf 23. (Rendered at 64 and upscaled to 240 with Pillow's bicubic before encoding,
    # this slice gave 96.03% against 96.97%: docs/benchmarks.md.)
    pixels, truth = generate_recording(9000, 3000, size=size)
    path = encode_video(tmp_path / f"heldout-{size}.mp4", pixels, crf=23)
    accuracy = {}
    for conversion in CONVERSIONS:
        source = VideoSource(path, conversion=conversion)
        analysis = analyse_recording(source, bundled_model, AnalysisParameters())
        labels = [analysis.labels[k] for k in analysis.raw_labels]
        accuracy[conversion] = 100 * np.mean([a == b for a, b in zip(labels, truth, strict=True)])
    assert accuracy["reference"] >= 95.0, accuracy
    assert abs(accuracy["luma"] - accuracy["reference"]) <= 0.5, accuracy


def test_the_luma_path_stretches_limited_range_to_pillows_0_to_255(tmp_path: Path) -> None:
    # Black and white halves: H.264 stores them as luma 16 and 235 (limited range).
    frames = np.zeros((30, 64, 64), dtype=np.uint8)
    frames[:, :, 32:] = 255
    path = encode_video(tmp_path / "bw.mp4", frames)
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
        plane = decoded.planes[0]  # the luma plane as stored, no conversion
        rows = np.frombuffer(bytes(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
        luma = rows[:, : plane.width]
    assert abs(int(luma[32, 8]) - 16) <= 2
    assert abs(int(luma[32, 56]) - 235) <= 2
    fast = next(iter(VideoSource(path).frames(SPEC))).pixels
    assert int(fast[32, 8]) <= 2
    assert int(fast[32, 56]) >= 253


def test_an_unknown_conversion_is_refused(faststart_mp4: Path) -> None:
    with pytest.raises(ValueError, match="conversion must be one of"):
        VideoSource(faststart_mp4, conversion="fast")  # type: ignore[arg-type]


def test_an_image_folder_is_decoded_as_v1_decodes_each_file(
    frames: np.ndarray, tmp_path: Path
) -> None:
    paths = write_frames(tmp_path / "seq", frames[:30], image_format="JPEG")
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=25.0)
    assert (source.info.width, source.info.height, source.info.codec) == (64, 64, "image-sequence")
    decoded = list(source.frames(SPEC))
    assert [frame.time_s for frame in decoded] == pytest.approx([i / 25 for i in range(30)])
    for frame, path in zip(decoded, paths, strict=True):
        upload = UploadedFrame(frame.index, path.name, path.read_bytes())
        assert np.array_equal(decode_frame(upload, SPEC, LIMITS), frame.pixels)


# --- bad input: each error is a RecordingError with a job error type ---------------------------


def _first_error(source_path: Path) -> RecordingError:
    with pytest.raises(RecordingError) as caught:
        list(VideoSource(source_path).frames(SPEC))
    return caught.value


def test_text_is_not_a_video_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is a lab notebook, not a video\n" * 50)
    with pytest.raises(NotAVideoError, match=r"notes\.mp4 is not a video") as caught:
        probe_video(path)
    assert (caught.value.type, caught.value.status_code) == ("not_a_video", 415)


def test_an_empty_file_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(NotAVideoError):
        probe_video(path)


def test_a_still_image_is_not_a_video(frames: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "frame.mp4"
    path.write_bytes(png_bytes(frames[0]))
    with pytest.raises(NotAVideoError, match="still image"):
        probe_video(path)


def test_an_undecodable_codec_is_unsupported(faststart_mp4: Path, tmp_path: Path) -> None:
    data = faststart_mp4.read_bytes()
    at = data.index(b"avc1", 40)  # the sample description's codec tag
    path = tmp_path / "mystery.mp4"
    path.write_bytes(data[:at] + b"zzzz" + data[at + 4 :])
    with pytest.raises(UnsupportedCodecError, match="codec FFmpeg cannot decode") as caught:
        probe_video(path)
    assert (caught.value.type, caught.value.status_code) == ("unsupported_codec", 415)


def test_a_truncated_video_fails_naming_the_frame_where_decoding_stopped(
    faststart_mp4: Path, tmp_path: Path
) -> None:
    path = truncate(faststart_mp4, 0.5, tmp_path / "cut.mp4")
    error = _first_error(path)
    assert isinstance(error, CorruptRecordingError)
    assert error.type == "corrupt_recording"
    assert "cut.mp4 is truncated: decoding stopped at frame" in error.detail
    assert "the container lists 60 frames" in error.detail
    stopped = int(error.detail.split("stopped at frame ")[1].split()[0])
    assert 0 < stopped < 60


def test_a_video_cut_before_its_index_is_corrupt_not_foreign(
    frames: np.ndarray, tmp_path: Path
) -> None:
    whole = encode_video(tmp_path / "whole.mp4", frames)  # index (moov) written at the end
    path = truncate(whole, 0.6, tmp_path / "cut.mp4")
    with pytest.raises(CorruptRecordingError, match="looks like a video container"):
        probe_video(path)


def test_damaged_frame_data_fails_naming_the_frame(faststart_mp4: Path, tmp_path: Path) -> None:
    path = garble(Path(shutil.copy(faststart_mp4, tmp_path / "damaged.mp4")), at=0.5, length=1000)
    error = _first_error(path)
    assert isinstance(error, CorruptRecordingError)
    assert "damaged.mp4: decoding stopped at frame " in error.detail
    stopped = int(error.detail.split("stopped at frame ")[1].split()[0])
    assert 0 < stopped < 60


def test_a_video_with_no_decodable_frame(faststart_mp4: Path, tmp_path: Path) -> None:
    data = faststart_mp4.read_bytes()
    media = data.index(b"mdat") + 4
    path = tmp_path / "blank.mp4"
    path.write_bytes(data[:media] + bytes(len(data) - media))  # the frames zeroed out
    error = _first_error(path)
    assert isinstance(error, NoDecodableFramesError)
    assert error.type == "no_decodable_frames"


def test_frames_above_the_pixel_limit_are_refused(faststart_mp4: Path) -> None:
    with pytest.raises(FrameTooLargeError, match="64x64 pixels a frame, above the limit of 1000"):
        VideoSource(faststart_mp4, limits=DecodeLimits(max_frame_pixels=1000))


def test_an_image_sequence_of_mixed_sizes_names_the_odd_frame(
    frames: np.ndarray, tmp_path: Path
) -> None:
    paths = write_frames(tmp_path / "seq", frames[:5])
    Image.fromarray(frames[3]).resize((80, 80)).save(paths[3])
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=30.0)
    with pytest.raises(MixedFrameSizesError) as caught:
        list(source.frames(SPEC))
    assert caught.value.detail == (
        "frame 3 (frame_00003.png) is 80x80, but the sequence began at 64x64 "
        "(frame 0, frame_00000.png)"
    )
    assert caught.value.type == "mixed_frame_sizes"


def test_an_undecodable_image_in_a_sequence_is_named(frames: np.ndarray, tmp_path: Path) -> None:
    paths = write_frames(tmp_path / "seq", frames[:4])
    paths[2].write_bytes(b"not an image at all")
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=30.0)
    with pytest.raises(CorruptRecordingError, match=r"frame 2 \(frame_00002.png\)"):
        list(source.frames(SPEC))


def test_an_image_sequence_in_an_unsupported_format_is_named(
    frames: np.ndarray, tmp_path: Path
) -> None:
    paths = write_frames(tmp_path / "seq", frames[:3])
    Image.fromarray(frames[1]).save(paths[1], format="ICO")
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=30.0)
    with pytest.raises(UnsupportedCodecError, match=r"frame 1 \(frame_00001.png\) is ICO"):
        list(source.frames(SPEC))
