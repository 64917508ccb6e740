"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by selenium)
against the lab's real console, with the few helpers the console's tests need.

Screenshots go to ``var/artifacts/<test name>-<step>.png`` (CI keeps that folder): each test
takes one at its key step, and the ``browser`` fixture (tests/e2e/conftest.py) takes
``<test name>-failed.png`` when the test fails, while the page is still there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# headless, alone: no GPU, no sandbox (root in a container), and nothing that reaches out to
# the network by itself (operations rooms and this machine are offline)
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1366,768")
POLL = 0.05  # seconds between two looks at the page while waiting for something on it

# each test's reports by phase ("setup", "call", "teardown"), kept by the hook in conftest.py
# so that the fixture's teardown knows whether the test failed
PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def artifact_name(test_name: str, step: str) -> str:
    """A file name for a test's step (parametrised names carry brackets and such)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{step}") + ".png"


class Browser:
    """One headless Chromium at the console ``base_url``, on behalf of one test."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, test_name: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.test_name = test_name

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    @property
    def page_source(self) -> str:
        return str(self.driver.page_source)

    def open(self, path: str) -> None:
        """Load a console page (``path`` from the root, e.g. ``/login``)."""
        self.driver.get(self.base_url + path)

    def sign_in(self, user: str, password: str) -> None:
        """Fill in the sign-in form and send it, as a person would (the CSRF token is the
        form's own)."""
        self.open("/login")
        self.wait_for("#username").send_keys(user)
        self.wait_for("#password").send_keys(password)
        self.wait_for("main form button[type=submit]").click()

    def sign_out(self) -> None:
        self.wait_for("form.signout button[type=submit]").click()

    def wait_for(self, css: str, text: str | None = None, timeout: float = 5.0) -> WebElement:
        """The first displayed element matching ``css`` (whose text contains ``text``, if
        given), polled until ``timeout``; the test fails saying what the page showed."""
        def found(driver: webdriver.Chrome) -> WebElement | bool:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                try:
                    if element.is_displayed() and (text is None or text in element.text):
                        return element
                except WebDriverException:  # replaced while we looked: look again
                    continue
            return False

        try:
            element = WebDriverWait(self.driver, timeout, poll_frequency=POLL).until(found)
        except TimeoutException:
            body = self.driver.find_element(By.TAG_NAME, "body").text[:500]
            wanted = css + (f" with text {text!r}" if text is not None else "")
            raise AssertionError(f"after {timeout:.1f} s no {wanted} on {self.url}; the page "
                                 f"says: {body!r}") from None
        assert isinstance(element, WebElement)
        return element

    def screenshot(self, step: str) -> Path:
        """Save the window as ``var/artifacts/<test name>-<step>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / artifact_name(self.test_name, step)
        if not self.driver.save_screenshot(str(path)):
            raise AssertionError(f"Chromium saved no screenshot to {path}")
        return path

    def cookies(self) -> dict[str, str]:
        """The console's cookies as the browser holds them (to reuse its session over HTTP)."""
        return {c["name"]: c["value"] for c in self.driver.get_cookies()}

    def cookie(self, name: str) -> dict[str, object]:
        found = self.driver.get_cookie(name)
        if found is None:
            raise AssertionError(f"the browser holds no cookie {name!r}")
        return dict(found)

    def user_agent(self) -> str:
        """What the browser sends as User-Agent (the console binds a session to it)."""
        return str(self.driver.execute_script("return navigator.userAgent"))


@contextmanager
def open_browser(base_url: str, item: pytest.Item, profile: Path) -> Iterator[Browser]:
    """A fresh headless Chromium (its own profile folder ``profile``) for the test ``item``;
    screenshots ``<test name>-failed.png`` if the test failed, then quits."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(15)
    browser = Browser(driver, base_url, item.name)
    try:
        yield browser
        reports = item.stash.get(PHASE_REPORTS, {})
        if any(r.failed for r in reports.values()):
            browser.screenshot("failed")
    finally:
        driver.quit()
