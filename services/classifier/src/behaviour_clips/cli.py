"""Command line: write a clip as PNG frames, a labelled recording, or a contact sheet."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from behaviour_clips.behaviours import LABELS
from behaviour_clips.clips import generate_clip
from behaviour_clips.contact_sheet import contact_sheet
from behaviour_clips.encoding import clip_to_png_bytes
from behaviour_clips.recording import generate_recording


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m behaviour_clips",
        description="Synthetic side-view home-cage mouse behaviour clips.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    clip = commands.add_parser("clip", help="write one clip as frame_00.png, frame_01.png, ...")
    clip.add_argument("--label", required=True, choices=LABELS)
    clip.add_argument("--seed", type=int, required=True)
    clip.add_argument("--frames", type=int, default=24)
    clip.add_argument("--size", type=int, default=64)
    clip.add_argument("--out", type=Path, required=True)

    recording = commands.add_parser(
        "recording", help="write a long recording as PNG frames plus labels.csv"
    )
    recording.add_argument("--seed", type=int, required=True)
    recording.add_argument("--frames", type=int, required=True)
    recording.add_argument("--size", type=int, default=64)
    recording.add_argument("--out", type=Path, required=True)

    sheet = commands.add_parser("contact-sheet", help="write a PNG with one clip per class")
    sheet.add_argument("--seed", type=int, default=0)
    sheet.add_argument("--out", type=Path, required=True)
    return parser


def _write_frames(frames: list[bytes], folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(2, len(str(len(frames) - 1)))
    names = []
    for index, data in enumerate(frames):
        name = f"frame_{index:0{digits}d}.png"
        (folder / name).write_bytes(data)
        names.append(name)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "clip":
            clip = generate_clip(args.label, args.seed, frames=args.frames, size=args.size)
            _write_frames(clip_to_png_bytes(clip), args.out)
            print(f"wrote {len(clip)} frames of {args.label!r} to {args.out}")
        elif args.command == "recording":
            frames, labels = generate_recording(args.seed, args.frames, size=args.size)
            names = _write_frames(clip_to_png_bytes(frames), args.out)
            with (args.out / "labels.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["frame", "file", "label"])
                writer.writerows(
                    (index, name, label)
                    for index, (name, label) in enumerate(zip(names, labels, strict=True))
                )
            print(f"wrote {len(frames)} frames and labels.csv to {args.out}")
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            contact_sheet(args.seed).save(args.out)
            print(f"wrote {args.out}")
    except ValueError as error:
        print(f"error: {error}")
        return 2
    return 0
