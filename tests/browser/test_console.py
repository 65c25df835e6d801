"""The console in a real browser: sign in with an API key, search a text collection and a
photo collection (a photo dropped on the page), browse points with a filter."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import API_KEY, save_screenshot
from tests.support.corpora import encoded, photo
from tests.support.server import Server
from vecserve_client import Client

pytestmark = pytest.mark.browser

SENTENCES = {
    "cat-nap": ("A cat is napping on the couch in the afternoon sun.", "animals"),
    "dog-park": ("The dog chased a ball across the park.", "animals"),
    "parrot": ("A green parrot repeats every word it hears.", "animals"),
    "horse": ("The horse galloped along the beach at dawn.", "animals"),
    "goldfish": ("Our goldfish swims in circles around its bowl.", "animals"),
    "owl": ("An owl hunts mice in the barn at night.", "animals"),
    "bread": ("She baked fresh sourdough bread this morning.", "food"),
    "pasta": ("Boil the pasta for nine minutes, then add the sauce.", "food"),
    "coffee": ("A strong espresso wakes me up before work.", "food"),
    "soup": ("Tomato soup tastes best with grilled cheese.", "food"),
    "salad": ("A salad of rocket, pear and walnuts.", "food"),
    "curry": ("The curry was so spicy that my eyes watered.", "food"),
    "rocket": ("The rocket launched into orbit carrying a weather satellite.", "space"),
    "mars": ("A rover drove across the red dust of Mars.", "space"),
    "telescope": ("The telescope photographed a galaxy far away.", "space"),
    "eclipse": ("Crowds gathered to watch the total solar eclipse.", "space"),
    "moon": ("Astronauts walked on the Moon in 1969.", "space"),
    "comet": ("A bright comet crossed the night sky last spring.", "space"),
    "goal": ("The striker scored a goal in the final minute.", "sport"),
    "marathon": ("Thousands of runners finished the city marathon.", "sport"),
    "tennis": ("She won the tennis match in three sets.", "sport"),
    "swim": ("The swimmer broke the world record in the pool.", "sport"),
    "chess": ("The chess champion sacrificed her queen to win.", "sport"),
    "cycling": ("The cyclists climbed the mountain pass in the rain.", "sport"),
    "laptop": ("My laptop battery lasts about ten hours.", "tech"),
    "database": ("The database keeps every write in a transaction log.", "tech"),
    "phone": ("The new phone has a much better camera.", "tech"),
    "router": ("Restarting the wifi router fixed the connection.", "tech"),
    "compiler": ("The compiler reported a type error on line twelve.", "tech"),
    "backup": ("Nightly backups are copied to another building.", "tech"),
}
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
WAIT_S = 60  # the first search of a model loads it, on a CPU that other jobs share


@pytest.fixture(scope="package")
def sdk(server: Server) -> Iterator[Client]:
    with Client(server.url, api_key=API_KEY) as client:
        yield client


@pytest.fixture(scope="package")
def sentences(sdk: Client) -> str:
    sdk.create_collection("sentences", embedder="minilm", index="flat")
    ids = list(SENTENCES)
    texts = [text for text, _ in SENTENCES.values()]
    payloads = [{"topic": topic, "text": text} for text, topic in SENTENCES.values()]
    sdk.upsert("sentences", ids, texts=texts, payloads=payloads)
    return "sentences"


@pytest.fixture(scope="package")
def photos(sdk: Client) -> str:
    sdk.create_collection("photos", embedder="efficientnet-lite0", index="flat", thumbnails=True)
    images = [encoded(photo(name)) for name in PHOTOS]
    payloads = [{"title": name.replace("_", " ")} for name in PHOTOS]
    sdk.upsert("photos", list(PHOTOS), images=images, payloads=payloads)
    return "photos"


def wait_for(driver: webdriver.Chrome, condition: Callable[[], Any], what: str) -> Any:
    # The page redraws some parts (the metrics every 2 s): an element found a moment ago
    # may be gone, which is a reason to look again.
    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(lambda _: condition(), message=what)


def visible(driver: webdriver.Chrome, element_id: str) -> WebElement | None:
    element = driver.find_element(By.ID, element_id)
    return element if element.is_displayed() else None


def sign_in(driver: webdriver.Chrome, server: Server, key: str = API_KEY) -> None:
    driver.get(f"{server.url}/console")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    wait_for(driver, lambda: visible(driver, "gate"), "the key gate")
    driver.find_element(By.ID, "key-input").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()


def open_collection(driver: webdriver.Chrome, server: Server, name: str) -> None:
    sign_in(driver, server)
    item = wait_for(
        driver,
        lambda: driver.find_elements(By.CSS_SELECTOR, f'#collection-list li[data-name="{name}"]'),
        f"collection {name} listed",
    )
    item[0].click()
    wait_for(driver, lambda: driver.find_element(By.ID, "detail-name").text == name, name)


def result_ids(driver: webdriver.Chrome) -> list[str]:
    cards = driver.find_elements(By.CSS_SELECTOR, "#results article.hit")
    return [str(card.get_attribute("data-id")) for card in cards]


def test_the_console_shows_nothing_without_a_key_and_tells_a_wrong_key_apart(
    browser: webdriver.Chrome, server: Server, sentences: str, screenshots: Path
) -> None:
    browser.get(f"{server.url}/console")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait_for(browser, lambda: visible(browser, "gate"), "the key gate")
    assert "needs an API key" in browser.find_element(By.ID, "gate-reason").text
    assert "no API key was sent" in browser.find_element(By.ID, "key-error").text
    assert not browser.find_element(By.ID, "collections-view").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#collection-list li") == []

    browser.find_element(By.ID, "key-input").send_keys("not-the-key-of-this-server")
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait_for(
        browser,
        lambda: "refused" in browser.find_element(By.ID, "gate-reason").text,
        "the wrong key refused",
    )
    assert "not valid" in browser.find_element(By.ID, "key-error").text
    save_screenshot(browser, screenshots, "console-wrong-key.png")

    browser.find_element(By.ID, "key-input").send_keys(API_KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait_for(browser, lambda: visible(browser, "collections-view"), "the console")
    names = [
        li.get_attribute("data-name")
        for li in browser.find_elements(By.CSS_SELECTOR, "#collection-list li")
    ]
    assert sentences in names
    # Kept in the tab: a reload needs no key again.
    browser.refresh()
    wait_for(browser, lambda: visible(browser, "collections-view"), "the console after a reload")


def test_a_text_search_shows_the_matching_sentence_first(
    browser: webdriver.Chrome, server: Server, sentences: str, screenshots: Path
) -> None:
    open_collection(browser, server, sentences)
    facts = browser.find_element(By.ID, "facts").text
    for shown in ("30", "384", "cosine", "flat", "minilm", "CPU"):
        assert shown in facts
    box = browser.find_element(By.ID, "search-text")
    box.send_keys("a kitten sleeping on the sofa")
    browser.find_element(By.ID, "search-button").click()
    ids = wait_for(browser, lambda: result_ids(browser), "search results")
    assert ids[0] == "cat-nap"
    assert len(ids) == 10
    first = browser.find_element(By.CSS_SELECTOR, "#results article.hit")
    assert "napping on the couch" in first.text
    save_screenshot(browser, screenshots, "console-text.png")


def test_a_photo_dropped_on_the_page_finds_the_same_photo_first(
    browser: webdriver.Chrome, server: Server, photos: str, screenshots: Path
) -> None:
    open_collection(browser, server, photos)
    browser.find_element(By.CSS_SELECTOR, '#search-modes button[data-mode="image"]').click()
    # The cat, mirrored and cropped: another photo of it, not the stored file.
    cat = photo("chelsea").crop((30, 20, 420, 280)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    dropped = base64.b64encode(encoded(cat)).decode()
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const file = new File([bytes], "cat.png", { type: "image/png" });
        const data = new DataTransfer();
        data.items.add(file);
        const zone = document.getElementById("dropzone");
        for (const type of ["dragover", "drop"]) {
          const init = { dataTransfer: data, bubbles: true, cancelable: true };
          zone.dispatchEvent(new DragEvent(type, init));
        }
        """,
        dropped,
    )
    ids = wait_for(browser, lambda: result_ids(browser), "photo search results")
    assert ids[0] == "chelsea"
    # Each card shows its point's thumbnail, fetched with the key and decoded.
    wait_for(
        browser,
        lambda: browser.execute_script(
            "const imgs = [...document.querySelectorAll('#results img.thumb')];"
            "return imgs.length === 6 && imgs.every((i) => i.complete && i.naturalWidth > 0);"
        ),
        "the thumbnails",
    )
    assert "390\N{MULTIPLICATION SIGN}260" in browser.find_element(By.ID, "dropzone-text").text
    save_screenshot(browser, screenshots, "console.png", for_docs=True)


def test_points_browse_with_a_filter_checked_as_typed_and_refused_by_the_server(
    browser: webdriver.Chrome, server: Server, sentences: str, screenshots: Path
) -> None:
    open_collection(browser, server, sentences)
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="points"]').click()
    wait_for(
        browser,
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "#points-table tbody tr")) == 25,
        "a page",
    )

    box = browser.find_element(By.ID, "browse-filter")
    box.send_keys('{"topic": {"$regex": "sp"}}')
    check = browser.find_element(By.ID, "browse-filter-check").text
    assert "unknown operator $regex" in check
    assert "$in $nin $exists" in check  # the valid ones are listed

    box.clear()
    box.send_keys(json.dumps({"topic": "space"}))
    assert browser.find_element(By.ID, "browse-filter-check").text == "✓ filter"
    browser.find_element(By.CSS_SELECTOR, "#browse-form button[type=submit]").click()

    def rows() -> list[str]:
        found = browser.find_elements(By.CSS_SELECTOR, "#points-table tbody tr")
        return [str(row.get_attribute("data-id")) for row in found]

    wait_for(browser, lambda: len(rows()) == 6, "the six space sentences")
    assert set(rows()) == {"rocket", "mars", "telescope", "eclipse", "moon", "comet"}
    save_screenshot(browser, screenshots, "console-points.png")

    # Past the light check, the server's own 4xx message is shown.
    box.clear()
    box.send_keys(json.dumps({"topic": {"$gt": {"a": 1}}}))
    browser.find_element(By.CSS_SELECTOR, "#browse-form button[type=submit]").click()
    error = wait_for(browser, lambda: visible(browser, "points-error"), "the server's error")
    assert error.text.startswith("InvalidFilter (422)")


def test_the_metrics_are_charted_and_nothing_is_asked_of_any_host_but_the_server(
    browser: webdriver.Chrome, server: Server, sdk: Client, sentences: str, screenshots: Path
) -> None:
    open_collection(browser, server, sentences)
    browser.find_element(By.CSS_SELECTOR, '#views button[data-view="metrics"]').click()

    def latency_figure() -> str:
        cards = browser.find_elements(By.CSS_SELECTOR, "#charts .chart-card")
        return str(cards[1].find_element(By.CSS_SELECTOR, ".figure").text) if cards else ""

    # Searches while the page samples /metrics every 2 s: a rate and a latency to chart.
    for query in ("a sleeping cat", "a rocket launch", "spicy food", "a chess match"):
        sdk.search(sentences, text=query, k=3)
        time.sleep(0.7)
    wait_for(
        browser,
        lambda: (
            "L"
            in (browser.find_element(By.CSS_SELECTOR, "#charts path.line").get_attribute("d") or "")
        ),
        "a charted request rate",
    )
    wait_for(
        browser,
        lambda: latency_figure().endswith("ms") and "\N{EN DASH}" not in latency_figure(),
        "a latency",
    )
    # Read in one go: the charts are redrawn under the test every 2 s.
    titles, text = browser.execute_script(
        "const charts = document.getElementById('charts');"
        "return [[...charts.querySelectorAll('h3')].map((h) => h.textContent), charts.innerText];"
    )
    assert titles[:3] == ["Request rate", "Mean latency", "Micro-batch size"]
    assert "sentences" in text
    save_screenshot(browser, screenshots, "console-metrics.png")
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert urls
    assert all(url.startswith((server.url + "/", "data:")) for url in urls), urls
    # Script errors and Content-Security-Policy violations; the 4xx answers that the
    # other tests provoke on purpose are logged as "network" and left out.
    logged = browser.get_log("browser")
    assert [e for e in logged if e["level"] == "SEVERE" and e["source"] != "network"] == []


def test_a_collection_is_created_and_dropped_only_after_confirmation(
    browser: webdriver.Chrome, server: Server, sdk: Client
) -> None:
    sign_in(browser, server)
    wait_for(browser, lambda: visible(browser, "collections-view"), "the console")
    browser.find_element(By.ID, "new-collection").click()
    browser.find_element(By.ID, "create-name").send_keys("scratch")
    browser.find_element(By.ID, "create-dim").send_keys("3")
    browser.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    wait_for(browser, lambda: browser.find_element(By.ID, "detail-name").text == "scratch", "made")
    assert sdk.get_collection("scratch").dim == 3

    browser.find_element(By.ID, "drop-collection").click()
    dialog = wait_for(browser, lambda: visible(browser, "confirm-dialog"), "the confirmation")
    assert "Drop scratch?" in dialog.text
    dialog.find_element(By.CSS_SELECTOR, 'button[value="cancel"]').click()
    assert "scratch" in sdk.list_collections()

    browser.find_element(By.ID, "drop-collection").click()
    wait_for(browser, lambda: visible(browser, "confirm-dialog"), "the confirmation")
    browser.find_element(By.ID, "confirm-ok").click()
    wait_for(browser, lambda: "scratch" not in sdk.list_collections(), "the drop")
    wait_for(
        browser,
        lambda: (
            not browser.find_elements(By.CSS_SELECTOR, '#collection-list li[data-name="scratch"]')
        ),
        "scratch gone from the list",
    )


def test_a_snapshot_is_created_and_listed(
    browser: webdriver.Chrome, server: Server, sentences: str
) -> None:
    open_collection(browser, server, sentences)
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="snapshots"]').click()
    wait_for(browser, lambda: visible(browser, "snapshots-table"), "the snapshots table")
    browser.find_element(By.ID, "create-snapshot").click()
    row = wait_for(
        browser,
        lambda: browser.find_elements(
            By.XPATH, '//table[@id="snapshots-table"]//button[text()="Download"]'
        ),
        "a snapshot listed",
    )
    assert row
    assert "30" in browser.find_element(By.ID, "snapshots-table").text
