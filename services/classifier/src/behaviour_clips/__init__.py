"""Synthetic side-view home-cage mouse behaviour clips, deterministic from a seed.

Eight classes after Jhuang et al. (2010), each with its own posture, place and motion; random
cage, mouse, lighting and camera. Used to train and test the bundled demonstration model.
"""

from __future__ import annotations

from behaviour_clips.behaviours import LABELS
from behaviour_clips.clips import generate_clip
from behaviour_clips.contact_sheet import contact_sheet
from behaviour_clips.encoding import clip_to_jpeg_bytes, clip_to_png_bytes, to_rgb
from behaviour_clips.recording import generate_recording

__version__ = "1.0.0"

__all__ = [
    "LABELS",
    "__version__",
    "clip_to_jpeg_bytes",
    "clip_to_png_bytes",
    "contact_sheet",
    "generate_clip",
    "generate_recording",
    "to_rgb",
]
