"""The web page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import shutil

import pytest

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from .test_pathless_items import serve_one_imported_image  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium is not installed (.ci/serve-deps.sh)")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    yield page, server.url
    context.close()
    assert not errors, errors


def result_images(page):
    return page.get_by_role("list", name="Results").get_by_role("img")


def loaded(image) -> bool:
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def test_type_a_query_and_see_images(page):
    page, url = page
    page.goto(url + "/")
    expect(page.get_by_label("Collection")).to_contain_text("pics")
    page.get_by_label("Search", exact=True).fill("a red car")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(result_images(page)).to_have_count(12)
    expect(page.locator("#status")).to_contain_text("12 results for “a red car”")
    first = result_images(page).first
    expect(first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert loaded(first)
    assert page.locator(".card .score").first.inner_text().replace("-", "").replace(".", "").isdigit()


def test_upload_an_image_finds_it_first(page, collection_path):
    page, url = page
    page.goto(url + "/")
    photo = collection_path.parent.parent / "pics-photos" / "img_03.jpg"
    page.get_by_label("Search by image").set_input_files(str(photo))
    expect(page.locator("#status")).to_contain_text("your image")
    expect(page.locator(".card .name").first).to_have_text("img_03.jpg")
    expect(page.get_by_role("img", name="Query image")).to_be_visible()
    page.get_by_label("Text instruction").fill("same but red")
    page.get_by_label("Text weight").fill("0.8")
    page.get_by_role("button", name="Search with image").click()
    expect(page.locator("#status")).to_contain_text("+ “same but red”")
    expect(result_images(page)).to_have_count(12)


def test_more_like_this_and_more_results(page):
    page, url = page
    page.goto(url + "/?k=5")
    page.get_by_label("Search", exact=True).fill("a photo")
    page.get_by_label("Search", exact=True).press("Enter")
    expect(result_images(page)).to_have_count(5)
    page.get_by_role("button", name="More results").click()
    expect(result_images(page)).to_have_count(10)
    page.get_by_role("button", name="More results").click()
    expect(result_images(page)).to_have_count(12)
    expect(page.get_by_role("button", name="More results")).to_be_hidden()

    name = page.locator(".card .name").nth(2).inner_text()
    page.get_by_role("button", name=f"More like this: {name}").click()
    expect(page.locator("#query-caption")).to_have_text(f"More like {name}")
    expect(page.locator("#status")).to_contain_text(f"“{name}”")
    expect(result_images(page)).to_have_count(5)
    expect(page.locator(".card .name")).not_to_contain_text([name] * 5)


def test_texts_and_errors_are_shown(page):
    page, url = page
    page.goto(url + "/")
    page.get_by_label("Find").select_option("text")
    page.get_by_label("Search", exact=True).fill("a dog")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".card blockquote")).to_have_count(5)
    page.get_by_label("Search by image").set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"this is not a png"}])
    expect(page.get_by_role("alert")).to_contain_text("Search failed")


def test_a_filter_narrows_text_image_and_more_like_this_queries(page, collection_path):
    page, url = page
    page.goto(url + "/")
    page.get_by_label("Search", exact=True).fill("a red car")
    page.get_by_label("Filter").fill("name~*.png")
    page.get_by_label("Filter").press("Enter")
    expect(page.locator("#status")).to_contain_text("1 result for “a red car” where name~*.png")
    expect(page.locator(".card .name")).to_have_text(["deep.png"])

    page.get_by_label("Filter").fill("folder~nested ; width>=64")  # two conditions, both must hold
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".card .name")).to_have_text(["deep.png"])
    page.get_by_label("Filter").fill("name in img_01.jpg,img_02.jpg,wide.jpg; width<100")
    page.get_by_label("Filter").press("Enter")
    expect(result_images(page)).to_have_count(2)
    assert sorted(page.locator(".card .name").all_inner_texts()) == ["img_01.jpg", "img_02.jpg"]

    photo = collection_path.parent.parent / "pics-photos" / "img_03.jpg"
    page.get_by_label("Filter").fill("name!~img_03*")
    page.get_by_label("Search by image").set_input_files(str(photo))  # sent as a form, filters and all
    expect(page.locator("#status")).to_contain_text("your image where name!~img_03*")
    expect(result_images(page)).to_have_count(11)
    expect(page.locator(".card .name")).not_to_contain_text(["img_03.jpg"])

    first = page.locator(".card .name").first.inner_text()
    page.get_by_label("Filter").fill("name~*.jpg")
    page.get_by_role("button", name=f"More like this: {first}").click()
    expect(page.locator("#status")).to_contain_text(f"“{first}” where name~*.jpg")
    expect(result_images(page)).to_have_count(10)  # 11 photos are .jpg files, less the one itself


def test_a_bad_filter_says_what_is_wrong_with_it(page):
    page, url = page
    page.goto(url + "/")
    page.get_by_label("Search", exact=True).fill("a dog")
    page.get_by_label("Filter").fill("width>10; taken")
    page.get_by_label("Filter").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("where.1")
    expect(page.get_by_role("alert")).to_contain_text("cannot read the filter 'taken'")
    page.get_by_label("Filter").fill("")
    page.get_by_label("Filter").press("Enter")
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(result_images(page)).to_have_count(12)


def test_an_image_with_no_file_here_shows_its_caption(browser, tmp_path, tiny_clip_spec):
    server = serve_one_imported_image(tmp_path / "c", tiny_clip_spec)
    context = browser.new_context()
    page, errors = context.new_page(), []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(server.url + "/")
        page.get_by_label("Search", exact=True).fill("a cat")
        page.get_by_role("button", name="Search", exact=True).click()
        results = page.get_by_role("list", name="Results")
        expect(results.locator(".card .name")).to_have_text(["a cat"])
        expect(results.get_by_role("img")).to_have_count(0)  # no broken image for a file the server lacks
        page.get_by_role("button", name="More like this: a cat").click()
        expect(page.locator("#status")).to_contain_text("result")
        assert not errors, errors
    finally:
        context.close()
        server.stop()


def test_api_docs_render_offline(page):
    page, url = page
    page.goto(url + "/docs")
    expect(page.get_by_text("/knn-service").first).to_be_visible()
    expect(page.get_by_text("/search", exact=True).first).to_be_visible()
