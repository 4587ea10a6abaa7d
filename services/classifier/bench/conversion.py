"""How to turn a decoded H.264 frame into the model's input, and what each shortcut costs in time
and in fidelity against the reference conversion (full RGB, Pillow convert("L"), bilinear).

    cd services/classifier && PYTHONPATH=src:. python -m bench.conversion [--frames 900]

Makes its own input: a generated recording rendered at 240x240, scaled to 640x480 while encoding
(libx264, yuv420p, crf 23, limited-range luma as cameras write it), decoded once with PyAV and
kept in memory, so that only conversion is timed. Each round times every method over every
frame, in alternating order; figures are medians over rounds, one thread. Fidelity: the max and
mean absolute difference of the float tensor (pixels / 255) from the reference's, and what the
bundled model makes of the frames (top label of every stride-1 window against the reference's,
and against the generator's label for the window's last frame). Needs PyAV (`av<19`).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorRange, VideoReformatter
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from behaviour_clips import LABELS, generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR
from classifier.model.runtime import SequenceModel, load_model

Pixels = npt.NDArray[np.uint8]
SIDE = 64  # the bundled model's frame size
WIDTH, HEIGHT = 640, 480

# Limited ("MPEG", "tv") range puts black at 16 and white at 235; Pillow's L, which the model was
# trained on, spans 0-255. A lookup table does the stretch on uint8 with rounding and clipping.
LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


def encode_recording(frames: Pixels, crf: int = 23, fps: int = 30) -> bytes:
    """MP4/H.264 yuv420p at 640x480 from small grey frames, scaled by swscale (bicubic)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.time_base = Fraction(1, fps)
        for index, pixels in enumerate(frames):
            small = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="gray")
            frame = small.reformat(WIDTH, HEIGHT, format="yuv420p", interpolation="BICUBIC")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def decode_all(data: bytes) -> tuple[list[av.VideoFrame], float]:
    """Every frame, and the seconds decoding took (threaded as the service decodes)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        started = time.perf_counter()
        frames = list(container.decode(stream))
        return frames, time.perf_counter() - started


def luma(frame: av.VideoFrame) -> Pixels:
    """The Y plane as a (height, width) array, without the plane's row padding."""
    plane = frame.planes[0]
    # A plane is a buffer (its type stub does not say so): a view, no copy.
    rows = np.frombuffer(cast(bytes, plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def is_limited_range(frame: av.VideoFrame) -> bool:
    """libx264 leaves the range unspecified, and FFmpeg then takes plain yuv formats as limited
    (only the yuvj formats are full range): the same rule here."""
    if frame.color_range == ColorRange.JPEG:
        return False
    return frame.color_range == ColorRange.MPEG or not frame.format.name.startswith("yuvj")


def to_full_range(pixels: Pixels, frame: av.VideoFrame) -> Pixels:
    return LIMITED_TO_FULL[pixels] if is_limited_range(frame) else pixels


def reference(frame: av.VideoFrame) -> Pixels:
    """What /v1 does to an uploaded image: RGB, then Pillow's L, then a bilinear resize."""
    rgb = Image.fromarray(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))  # to_image
    image = rgb.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def luma_pillow(resample: Image.Resampling) -> Callable[[av.VideoFrame], Pixels]:
    def convert(frame: av.VideoFrame) -> Pixels:
        small = Image.fromarray(luma(frame)).resize((SIDE, SIDE), resample)
        return to_full_range(np.asarray(small, dtype=np.uint8), frame)

    return convert


def luma_stretched_first(frame: av.VideoFrame) -> Pixels:
    """Range stretch on the full plane, then the reference's resize: rounding as the reference."""
    image = Image.fromarray(to_full_range(luma(frame), frame))
    return np.asarray(image.resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.uint8)


def swscale(interpolation: str, *, reuse: bool = True) -> Callable[[av.VideoFrame], Pixels]:
    """FFmpeg's scaler straight to 64x64 grey: it reads the luma and stretches the range.
    `frame.reformat` builds a new scaler for every frame; one VideoReformatter keeps its own."""
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame) -> Pixels:
        small = (reformatter.reformat if reuse else type(frame).reformat)(
            frame,
            SIDE,
            SIDE,
            format="gray",
            interpolation=interpolation,
            src_color_range="MPEG" if is_limited_range(frame) else "JPEG",
            dst_color_range="JPEG",
            threads=1,
        )
        return np.asarray(small.to_ndarray(), dtype=np.uint8)

    return convert


def filter_graph(template: av.VideoFrame, flags: str) -> Callable[[av.VideoFrame], Pixels]:
    """The same scaler as a filter graph (scale, then format=gray), one frame pushed at a time."""
    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=template.width,
        height=template.height,
        format=template.format,
        time_base=Fraction(1, 30),
    )
    in_range = "tv" if is_limited_range(template) else "pc"
    scale = graph.add(
        "scale", f"{SIDE}:{SIDE}:flags={flags}:in_range={in_range}:out_range=pc:threads=1"
    )
    grey = graph.add("format", "gray")
    sink = graph.add("buffersink")
    source.link_to(scale)
    scale.link_to(grey)
    grey.link_to(sink)
    graph.configure()

    def convert(frame: av.VideoFrame) -> Pixels:
        graph.vpush(frame)
        return np.asarray(graph.vpull().to_ndarray(), dtype=np.uint8)

    return convert


@dataclass
class Measured:
    seconds: list[float]
    pixels: Pixels


def measure(frames: list[av.VideoFrame], rounds: int) -> dict[str, Measured]:
    methods: dict[str, Callable[[av.VideoFrame], Pixels]] = {
        "reference: RGB, Pillow L, bilinear": reference,
        "luma plane, range stretch, Pillow bilinear": luma_stretched_first,
        "luma plane, Pillow box (area), range stretch": luma_pillow(Image.Resampling.BOX),
        "swscale to gray, bilinear, frame.reformat": swscale("BILINEAR", reuse=False),
        "swscale to gray, bilinear, one VideoReformatter": swscale("BILINEAR"),
        "swscale to gray, area, one VideoReformatter": swscale("AREA"),
        "swscale to gray, fast_bilinear, one VideoReformatter": swscale("FAST_BILINEAR"),
        "filter graph scale=64:64 + format=gray, bilinear": filter_graph(frames[0], "bilinear"),
        "filter graph scale=64:64 + format=gray, area": filter_graph(frames[0], "area"),
    }
    results: dict[str, Measured] = {}
    names = list(methods)
    for round_number in range(rounds):
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            convert = methods[name]
            started = time.perf_counter()
            pixels = np.stack([convert(frame) for frame in frames])
            elapsed = time.perf_counter() - started
            if name in results:
                results[name].seconds.append(elapsed)
            else:
                results[name] = Measured([elapsed], pixels)
    return results


def window_labels(pixels: Pixels, model: SequenceModel) -> npt.NDArray[np.int64]:
    """Top label of every stride-1 window, by the split path (each frame encoded once)."""
    tensor = pixels.astype(np.float32)[..., None] / np.float32(255.0)
    embeddings = model.encode_frames(tensor)
    length = model.manifest.input.frames
    windows = np.ascontiguousarray(
        sliding_window_view(embeddings, length, axis=0).transpose(0, 2, 1)
    )
    probabilities = np.concatenate(
        [model.classify_windows(windows[i : i + 512]) for i in range(0, len(windows), 512)]
    )
    labels: npt.NDArray[np.int64] = probabilities.argmax(axis=1)
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--render-size", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    rendered, truth = generate_recording(args.seed, args.frames, size=args.render_size)
    data = encode_recording(rendered)
    frames, decode_seconds = decode_all(data)
    first = frames[0]
    print(
        f"{len(frames)} frames {first.width}x{first.height} {first.format.name}, color_range "
        f"{first.color_range!s}, {len(data) / 1e6:.1f} MB; PyAV {av.__version__}; decoding "
        f"(thread_type AUTO) {decode_seconds / len(frames) * 1e3:.2f} ms/frame"
    )
    results = measure(frames, args.rounds)
    model = load_model(DEFAULT_MODEL_DIR)
    reference_pixels = results["reference: RGB, Pillow L, bilinear"].pixels
    reference_tensor = reference_pixels.astype(np.float64) / 255.0
    reference_labels = window_labels(reference_pixels, model)
    length = model.manifest.input.frames
    truth_labels = np.array([LABELS.index(label) for label in truth[length - 1 :]])
    print(
        "\n| method | ms/frame | vs reference | tensor max abs diff | tensor mean abs diff "
        "| window labels = reference | window accuracy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference_ms = statistics.median(results["reference: RGB, Pillow L, bilinear"].seconds)
    for name, measured in results.items():
        seconds = statistics.median(measured.seconds)
        difference = np.abs(measured.pixels.astype(np.float64) / 255.0 - reference_tensor)
        labels = window_labels(measured.pixels, model)
        print(
            f"| {name} | {seconds / len(frames) * 1e3:.3f} | {reference_ms / seconds:.1f}x | "
            f"{difference.max():.4f} | {difference.mean():.5f} | "
            f"{(labels == reference_labels).mean():.2%} | {(labels == truth_labels).mean():.2%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
