"""The web app in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven
by Selenium; nothing downloads a browser: the Service points at /usr/bin/chromedriver, so
Selenium Manager never runs) against the app served by uvicorn on a free loopback port, on the
real node with the sample catalog ingested by the ingest library with the shipped joint model
into a prefix of its own (its own hybrid pipeline and tuning history, removed afterwards).

Without the browser these tests fail under CI (``CI`` set) and are skipped locally. Screenshots
go to ``test-output/screenshots/`` (git-ignored); ``OUTFIT_UPDATE_SCREENSHOTS=1`` also writes
the two shown in the README (``docs/screenshots/``)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from engine.api.app import create_app
from engine.backend import Backend
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.errors import EngineError, ModelUnavailable
from engine.settings import ClusterSettings, Settings
from tests.conftest import ROOT, SAMPLE, TEST_PREFIX

pytestmark = [pytest.mark.browser, pytest.mark.opensearch, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KEY = "browser-test-admin-key"
OUT = ROOT / "test-output" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
QUERY = "black shirt"  # a query whose order the BM25 weight changes on the sample
WAIT_S = 30.0


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    why = f"browser tests need {' and '.join(missing)} (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def web_settings(settings: Settings) -> Settings:
    _require_browser()
    prefix = f"{TEST_PREFIX}-web{uuid.uuid4().hex[:8]}"
    cs = ClusterSettings.model_validate({**settings.cluster.model_dump(), "index_prefix": prefix})
    api = settings.api.model_copy(update={"admin_api_key": SecretStr(KEY)})
    return settings.model_copy(update={"cluster": cs, "api": api})


@pytest.fixture(scope="module")
def joint(web_settings: Settings) -> Any:
    from engine.models.joint import JointModel

    try:
        return JointModel.load(web_settings.models.joint_checkpoint, device="cpu")
    except ModelUnavailable as exc:
        pytest.skip(f"joint model not available: {exc.message}")


@pytest.fixture(scope="module")
def catalog(
    cluster: Backend, web_settings: Settings, joint: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The sample products and looks under the module's own prefix."""
    from ingest import ingest_products
    from ingest.encode import JointEncoder
    from ingest.looks import ingest_looks_file

    cs = web_settings.cluster
    objects = [o for o in desired_objects(cs.index_prefix) if o.kind != "stored_script"]
    apply(cluster, objects)
    try:
        cluster.ensure_index(cs.products_index)
        cluster.ensure_index(cs.looks_index)
        ingest_products(
            web_settings,
            SAMPLE / "catalog.jsonl",
            images_dir=SAMPLE / "images",
            index=cs.products_index,
            backend=cluster,
            encoder=JointEncoder(joint, "test"),
            state_dir=tmp_path_factory.mktemp("web-ingest"),
            progress=False,
        )
        ingest_looks_file(cluster, web_settings, SAMPLE / "looks.jsonl")
        yield web_settings
    finally:
        for index in (cs.products_index, cs.looks_index, f"{cs.index_prefix}-settings"):
            cluster.delete_index(index)
        for o in objects:
            try:
                if o.kind == "search_pipeline":
                    cluster.delete_search_pipeline(o.name)
                else:
                    cluster.delete_index_template(o.name)
            except EngineError:
                pass


@pytest.fixture(scope="module")
def base_url(catalog: Settings, cluster: Backend, joint: Any) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    app = create_app(catalog, backend=cluster, loaders={"joint": lambda: joint})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(fn: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except Exception:  # noqa: BLE001 - a stale or missing element: ask again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def screenshot(driver: Any, name: str, publish: bool = False) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 800), 2400))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    if publish and os.environ.get("OUTFIT_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / name)
    return path


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def text_search(driver: Any, base_url: str, query: str) -> list[str]:
    """Search on the shopper page; the result ids in page order."""
    from selenium.webdriver.common.by import By

    driver.get(base_url + "/")
    box = by_id(driver, "q")
    box.clear()
    box.send_keys(query)
    box.submit()
    wait_for(lambda: "Results" in by_id(driver, "status").text, "results")
    cards = driver.find_elements(By.CSS_SELECTOR, "#results .card")
    return [c.get_attribute("data-id") for c in cards]


def images_loaded(driver: Any) -> list[int]:
    """naturalWidth of every result image once all have finished loading (else empty)."""
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll('#results img')];"
        "return imgs.length && imgs.every(i => i.complete) ? imgs.map(i => i.naturalWidth) : [];"
    )


def test_text_search_shows_images_that_loaded(browser: Any, base_url: str) -> None:
    ids = text_search(browser, base_url, "blue shirt")
    assert len(ids) == 12  # a full first page
    widths = wait_for(lambda: images_loaded(browser), "result images")
    assert len(widths) == 12 and all(w > 0 for w in widths), widths
    alts = browser.execute_script(
        "return [...document.querySelectorAll('#results img')].map(i => i.alt)"
    )
    assert all(alts), "every image has its title as alt text"
    assert by_id(browser, "next").is_enabled()
    screenshot(browser, "shopper.png", publish=True)
    by_id(browser, "next").click()
    wait_for(lambda: "Page 2" in by_id(browser, "page-no").text, "page 2")


def test_photo_upload_returns_results(browser: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(base_url + "/")
    by_id(browser, "photo").send_keys(str(SAMPLE / "images" / "10018.jpg"))
    wait_for(lambda: "your photo" in by_id(browser, "status").text, "photo results")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .card")) > 0
    # "this but in ...": the same photo with a wanted colour goes to the compose endpoint
    by_id(browser, "wanted").send_keys("blue")
    by_id(browser, "compose-btn").click()
    wait_for(lambda: "but blue" in by_id(browser, "status").text, "composed results")


def test_complete_the_look_opens_with_slots(browser: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    text_search(browser, base_url, "blue shirt")
    browser.find_element(By.CSS_SELECTOR, "#results .card .complete").click()
    slots = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#look .slot"), "complete-the-look slots"
    )
    assert by_id(browser, "look").get_attribute("open") is not None
    assert len(slots) >= 2, [s.get_attribute("data-slot") for s in slots]
    items = browser.find_elements(By.CSS_SELECTOR, "#look .slot-item")
    assert items and all(i.find_element(By.CSS_SELECTOR, ".reason").text for i in items)
    screenshot(browser, "complete-the-look.png")


def test_wrong_admin_key_is_refused(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/merchandising")
    browser.execute_script("sessionStorage.clear()")
    by_id(browser, "admin-key").send_keys("not-the-key")
    by_id(browser, "login-btn").click()
    err = wait_for(
        lambda: by_id(browser, "error").is_displayed() and by_id(browser, "error"), "error"
    )
    assert err.get_attribute("data-code") == "unauthorized"
    assert not by_id(browser, "workspace").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0


def test_saving_bm25_one_changes_the_live_order_and_rollback_restores_it(
    browser: Any, base_url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    before = text_search(browser, base_url, QUERY)
    assert before
    browser.get(base_url + "/merchandising")
    browser.execute_script("sessionStorage.clear()")
    by_id(browser, "admin-key").send_keys(KEY)
    by_id(browser, "login-btn").click()
    wait_for(lambda: by_id(browser, "workspace").is_displayed(), "the workspace")
    assert browser.execute_script("return sessionStorage.getItem('outfit-admin-key')") == KEY
    by_id(browser, "mq").send_keys(QUERY)
    by_id(browser, "compare-btn").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#cand .hit"), "the rankings")
    by_id(browser, "w-bm25").send_keys(Keys.END)  # keyboard: the slider to its maximum, 1
    assert (
        by_id(browser, "w-bm25-out").text == "1.00"
        and by_id(browser, "w-vector-out").text == "0.00"
    )
    wait_for(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, "#cand .hit.up, #cand .hit.down, #cand .hit.new"
        ),
        "rank changes marked in the candidate",
    )
    browser.find_element(By.CSS_SELECTOR, "#cand .hit").click()
    wait_for(lambda: "bm25" in by_id(browser, "explain").text, "the explain breakdown")
    by_id(browser, "note").send_keys("browser test: BM25 only")
    by_id(browser, "save-btn").click()
    wait_for(lambda: "BM25 1.00" in by_id(browser, "live-info").text, "the saved version live")
    wait_for(
        lambda: (
            "browser test: BM25 only"
            in browser.find_elements(By.CSS_SELECTOR, "#history tr")[0].text
        ),
        "the saved version at the top of the history",
    )
    screenshot(browser, "merchandising.png", publish=True)
    # the shopper page: the live order changes (the service re-reads the pipeline within 5 s)
    changed = wait_for(
        lambda: (ids := text_search(browser, base_url, QUERY)) != before and ids,
        "the live order to change",
    )
    assert changed != before
    # roll back to the version before the save: the shopper order is restored
    browser.get(base_url + "/merchandising")
    wait_for(lambda: by_id(browser, "workspace").is_displayed(), "the workspace (session kept)")
    buttons = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#history button.rollback"), "history"
    )
    buttons[0].click()
    wait_for(lambda: "BM25 0.40" in by_id(browser, "live-info").text, "the rolled-back weights")
    restored = wait_for(
        lambda: (ids := text_search(browser, base_url, QUERY)) == before and ids,
        "the original order",
    )
    assert restored == before
