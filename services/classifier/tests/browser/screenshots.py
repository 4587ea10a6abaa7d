"""``make screenshots``: the web page with a clip result and a recording result, at desktop and
phone width, taken in the same headless Chromium and against the same real server as the
browser tests, written as PNG files into the folder given (docs/)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import FilePayload, Page, expect

from behaviour_clips import clip_to_png_bytes, generate_clip
from classifier.core.config import DEFAULT_MODEL_DIR
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


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as data:
        env = {"CLASSIFIER_WORKERS": "1", "CLASSIFIER_DATA_DIR": data}
        with running_classifier(DEFAULT_MODEL_DIR, env=env) as server, chromium(server.url) as b:
            for name, width in WIDTHS.items():
                page = b.new_page(width, 800)
                clip_result(page, server.url)
                path = out / f"web-clip-{name}.png"
                page.screenshot(path=path, full_page=True)
                print(f"screenshots: wrote {path}")
                page.close()
            if b.foreign_requests():
                print(f"screenshots: requests left the service: {b.foreign_requests()}")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs")))
