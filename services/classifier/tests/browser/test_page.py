"""The web page in a real Chromium against a real server: a clip classified, errors shown in the
API's words, an API key asked for when keys are on, and nothing loaded from another host."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from behaviour_clips import LABELS, clip_to_png_bytes, generate_clip
from classifier.core.config import DEFAULT_MODEL_DIR
from tests.support.api_keys import IssuedKeys
from tests.support.browser import Browsing, csp_violations
from tests.support.server import ServerProcess, running_classifier

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Written out, not imported: a change to the page's policy must be a deliberate change here too.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
SEED = 1  # held out from training, like the integration test of the bundled model


def payloads(frames: list[bytes], names: list[str] | None = None) -> list[FilePayload]:
    names = names or [f"frame_{i:02d}.png" for i in range(len(frames))]
    return [
        {"name": name, "mimeType": "image/png", "buffer": data}
        for name, data in zip(names, frames, strict=True)
    ]


def open_page(page: Page, server: ServerProcess) -> None:
    response = page.goto(server.url + "/")
    assert response is not None
    assert response.status == 200
    expect(page.locator("#model-summary")).to_contain_text("Model rodent-behaviour 1.0.0")


def assert_stayed_home(page: Page, browsing: Browsing) -> None:
    assert browsing.foreign_requests() == []
    assert browsing.blocked == []
    assert csp_violations(page) == []
    assert browsing.csp_messages() == []


def test_the_page_has_its_exact_policy_and_loads_only_its_own_files(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    response = page.goto(server.url + "/")

    assert response is not None
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"] == PAGE_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    expect(page.locator("#model-summary")).to_have_text(
        "Model rodent-behaviour 1.0.0: 24 frames of 64\u00d764 grayscale, 8 labels"
    )
    expect(page.locator("#clip-bars tr")).to_have_count(len(LABELS))
    loaded = {url.removeprefix(server.url) for url in browsing.requests}
    assert {"/", "/static/app.css", "/static/app.js", "/static/icon.svg", "/v1/models"} <= loaded
    assert_stayed_home(page, browsing)


def test_a_generated_clip_gets_its_label_and_a_bar_per_label(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    label = "groom"
    frames = clip_to_png_bytes(generate_clip(label, SEED))
    open_page(page, server)
    result_box = page.locator("#clip-result").bounding_box()

    # Chosen out of order: the page sends them in file-name order.
    page.locator("#clip-files").set_input_files(list(reversed(payloads(frames))))
    expect(page.locator("#clip-chosen")).to_have_text(
        "24 frames chosen (frame_00.png \u2026 frame_23.png)."
    )
    expect(page.locator("#clip-thumbs img")).to_have_count(24)
    page.get_by_role("button", name="Classify").click()

    expect(page.locator("#clip-label")).to_have_text(label)
    expect(page.locator("#clip-confidence")).to_have_text(re.compile(r"^\d+\.\d% confident$"))
    rows = page.locator("#clip-bars tr")
    expect(rows).to_have_count(len(LABELS))
    assert rows.locator("th").all_inner_texts() == list(LABELS)
    expect(page.locator("#clip-bars tr.winner th")).to_have_text(label)
    top_value = float(page.locator("#clip-bars tr.winner meter").get_attribute("value") or "nan")
    values = [float(v) for v in rows.locator("meter").evaluate_all("ms => ms.map(m => m.value)")]
    assert max(values) == pytest.approx(top_value)
    assert sum(values) == pytest.approx(1.0, abs=1e-3)
    # The result filled space kept for it: nothing moved.
    assert page.locator("#clip-result").bounding_box() == result_box
    assert_stayed_home(page, browsing)


def test_an_undecodable_frame_shows_the_api_message_with_its_file_name(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    frames = [*clip_to_png_bytes(generate_clip("walk", SEED))[:23], b"this is not an image"]
    names = [*(f"frame_{i:02d}.png" for i in range(23)), "frame_23_broken.png"]
    api = httpx.post(
        server.url + "/v1/models/rodent-behaviour/classify",
        files=[("frames", (n, d, "image/png")) for n, d in zip(names, frames, strict=True)],
    )
    assert api.status_code == 422
    detail = api.json()["detail"]
    assert "frame_23_broken.png" in detail
    open_page(page, server)

    page.locator("#clip-files").set_input_files(payloads(frames, names))
    page.get_by_role("button", name="Classify").click()

    error = page.get_by_role("alert").filter(has_text="frame_23_broken.png")
    expect(error.locator("p").first).to_have_text(detail[0].upper() + detail[1:] + ".")
    expect(error.locator(".request-id")).to_have_text(re.compile(r"^Request id: [0-9a-f]{32}$"))
    expect(page.locator("#clip-label")).to_have_text("\u2014")
    assert_stayed_home(page, browsing)


def test_the_wrong_frame_count_is_flagged_and_the_api_says_why(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    frames = clip_to_png_bytes(generate_clip("rest", SEED))[:10]
    open_page(page, server)

    page.locator("#clip-files").set_input_files(payloads(frames))
    expect(page.locator("#clip-chosen")).to_have_text(
        "10 frames chosen (frame_00.png \u2026 frame_09.png). The model takes 24."
    )
    page.get_by_role("button", name="Classify").click()

    expect(page.locator("#clip-error p").first).to_have_text(
        "Expected exactly 24 frames, received 10."
    )
    assert_stayed_home(page, browsing)


def test_with_keys_on_the_page_asks_for_one_and_every_request_carries_it(
    page: Page, browsing: Browsing, tmp_path: Path
) -> None:
    issued = IssuedKeys(tmp_path / "keys.jsonl")
    key = issued.add("browser")
    env = {
        "CLASSIFIER_API_KEYS_FILE": str(issued.path),
        "CLASSIFIER_WORKERS": "1",
        "CLASSIFIER_DATA_DIR": str(tmp_path / "data"),
    }
    sent: dict[str, str | None] = {}
    with running_classifier(DEFAULT_MODEL_DIR, env=env) as keyed:
        browsing.allow(keyed.url)
        page.on(
            "request",
            lambda r: (
                sent.__setitem__(r.url, r.headers.get("authorization")) if "/v1/" in r.url else None
            ),
        )
        # The page and its assets are public: it loads, then the API refuses without a key.
        response = page.goto(keyed.url + "/")
        assert response is not None
        assert response.status == 200
        dialog = page.get_by_role("dialog", name="This service needs an API key")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#key-reason")).to_contain_text("This route needs an API key")
        field = dialog.get_by_label("API key")
        field.fill("k-not-a-key-of-this-service")
        field.press("Enter")
        # A wrong key is refused too, and the dialog asks again, saying why.
        expect(dialog.locator("#key-reason")).to_have_text("The API key is not valid.")
        expect(dialog).to_be_visible()
        field.fill(key)
        field.press("Enter")

        expect(page.locator("#model-summary")).to_contain_text("Model rodent-behaviour 1.0.0")
        expect(dialog).to_be_hidden()
        expect(page.locator("#key-status")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('classifier.apiKey')") == key
        frames = clip_to_png_bytes(generate_clip("eat", SEED))
        page.locator("#clip-files").set_input_files(payloads(frames))
        page.get_by_role("button", name="Classify").click()
        expect(page.locator("#clip-label")).to_have_text("eat")
        classified = f"{keyed.url}/v1/models/rodent-behaviour/classify"
        assert sent[classified] == f"Bearer {key}"
        assert sent[f"{keyed.url}/v1/models"] == f"Bearer {key}"

        # A new tab has its own (empty) sessionStorage: the key does not follow it.
        other = browsing.new_page()
        other.goto(keyed.url + "/")
        expect(other.get_by_role("dialog", name="This service needs an API key")).to_be_visible()
        other.close()
        page.get_by_role("button", name="Forget it").click()
        assert page.evaluate("sessionStorage.getItem('classifier.apiKey')") is None
        assert_stayed_home(page, browsing)


def test_every_control_is_labelled_and_tabs_work_from_the_keyboard(
    page: Page, server: ServerProcess
) -> None:
    open_page(page, server)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((c) => !((c.labels && c.labels.length) || c.getAttribute('aria-label')
                             || c.textContent.trim()))
            .map((c) => c.outerHTML)"""
    )
    assert unlabelled == []

    page.get_by_role("tab", name="Clip").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Recording")).to_be_focused()
    expect(page.get_by_role("tab", name="Recording")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-recording")).to_be_visible()
    expect(page.locator("#panel-clip")).to_be_hidden()
    page.keyboard.press("Tab")
    expect(page.get_by_label("A video file")).to_be_focused()


@pytest.mark.parametrize("width", [390, 1280])
def test_readable_without_sideways_scrolling(page: Page, server: ServerProcess, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    open_page(page, server)
    for tab in ("Clip", "Recording"):
        page.get_by_role("tab", name=tab).click()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
