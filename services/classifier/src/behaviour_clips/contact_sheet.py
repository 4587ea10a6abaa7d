"""A labelled picture of every behaviour: one row per class, a few frames of one clip each."""

from __future__ import annotations

from PIL import Image, ImageDraw

from behaviour_clips.behaviours import LABELS
from behaviour_clips.clips import generate_clip


def contact_sheet(seed: int, *, shown_frames: int = 6, scale: int = 2) -> Image.Image:
    """Rows of evenly spaced frames from `generate_clip(label, seed)` for each label."""
    label_width = 120
    tile = 64 * scale
    gap = 4
    width = label_width + shown_frames * (tile + gap)
    height = len(LABELS) * (tile + gap) + gap
    sheet = Image.new("L", (width, height), color=255)
    draw = ImageDraw.Draw(sheet)
    for row, label in enumerate(LABELS):
        clip = generate_clip(label, seed)
        top = gap + row * (tile + gap)
        draw.text((8, top + tile // 2 - 6), label, fill=0)
        step = (len(clip) - 1) / max(shown_frames - 1, 1)
        for column in range(shown_frames):
            index = round(column * step)
            frame = Image.fromarray(clip[index]).resize((tile, tile), Image.Resampling.NEAREST)
            left = label_width + column * (tile + gap)
            sheet.paste(frame, (left, top))
            draw.text((left + 3, top + 2), f"t={index}", fill=255)
    return sheet
