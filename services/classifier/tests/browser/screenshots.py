"""``make screenshots``: the web page with a clip result and a recording result, at desktop and
phone width, taken in the same headless Chromium and against the same real server as the
browser tests, written as PNG files into the folder given (docs/)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import FilePayload, Page, expect

from behaviour_clips import clip_to_png_bytes, generate_clip, generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR
from tests.recordings.media import encode_video
from tests.support.browser import chromium
from tests.support.server import running_classifier

WIDTHS = {"desktop": 1280, "phone": 390}


def clip_result(page: Page, url: str) -> None:
    frames = clip_to_png_bytes(generate_clip("groom", 1))
    page.goto(url + "/#clip")
    expect(page.locator("#model-summary")).to_contain_text("Model rodent-behaviour")
    files: list[FilePayload] = [
        {"name": f"frame_{i:02d}.png", "mimeType": "image/png", "buffer": data}
        for i, data in enumerate(frames)
    ]
    page.locator("#clip-files").set_input_files(files)
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#clip-label")).to_have_text("groom")


def recording_result(page: Page, url: str, video: Path) -> None:
    page.goto(url + "/#recording")
    expect(page.locator("#model-summary")).to_contain_text("Model rodent-behaviour")
    page.locator("#rec-files").set_input_files(video)
    page.locator("summary", has_text="Options").click()
    page.get_by_label("Subject", exact=True).fill("m1")
    page.get_by_label("Session", exact=True).fill("day 1")
    page.locator("summary", has_text="Options").click()
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#job-text")).to_have_text(re.compile("^Done: "), timeout=120_000)
    expect(page.locator("#ethogram")).to_have_js_property("complete", True)
    expect(page.locator("#bouts-body tr").first).not_to_have_class("placeholder")


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as scratch:
        pixels, _ = generate_recording(5, 1800)  # one minute at 30 fps
        video = encode_video(Path(scratch) / "cage1-day1.mp4", pixels, fps=30)
        env = {"CLASSIFIER_WORKERS": "1", "CLASSIFIER_DATA_DIR": str(Path(scratch) / "data")}
        with running_classifier(DEFAULT_MODEL_DIR, env=env) as server, chromium(server.url) as b:
            for name, width in WIDTHS.items():
                page = b.new_page(width, 800)
                clip_result(page, server.url)
                path = out / f"web-clip-{name}.png"
                page.screenshot(path=path, full_page=True)
                print(f"screenshots: wrote {path}")
                page.close()
            for name, width in WIDTHS.items():
                page = b.new_page(width, 800)
                recording_result(page, server.url, video)
                path = out / f"web-recording-{name}.png"
                page.screenshot(path=path, full_page=True)
                print(f"screenshots: wrote {path}")
                page.close()
            if b.foreign_requests():
                print(f"screenshots: requests left the service: {b.foreign_requests()}")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs")))
