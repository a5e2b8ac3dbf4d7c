"""A real headless Chromium for the page tests: Debian's chromium, driven
through Debian's chromedriver by Selenium.

The driver is named explicitly (``Service(CHROMEDRIVER)``), so Selenium
Manager never runs and nothing is downloaded. Selenium's calls block, and
the engine under test runs in the test's own event loop: every browser call
runs in a worker thread, so the engine keeps serving while the browser
waits on the page.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from ivr.settings import REPO

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
POLL_S = 0.05
# Screenshots of every run (gitignored); the README's copies are rewritten
# only when asked, so a test run never dirties the work tree.
ARTIFACTS = Path(os.environ.get("HOTLINE_TEST_ARTIFACTS", REPO / "test-artifacts"))
README_SCREENSHOTS = REPO / "tests" / "e2e" / "screenshots"
UPDATE_README_SCREENSHOTS = os.environ.get("HOTLINE_UPDATE_SCREENSHOTS") == "1"


class Browser:
    def __init__(self, driver: WebDriver) -> None:
        self._driver = driver

    @classmethod
    async def start(cls, width: int = 1400, height: int = 900) -> Browser:
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} missing: apt-get install chromium chromium-driver (make installs them)")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # --no-sandbox: Chromium's sandbox refuses to run as root, which the
        # tests (and CI) are; the pages it loads are our own.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--no-first-run", "--disable-extensions", f"--window-size={width},{height}",
                         "--force-device-scale-factor=1"):
            options.add_argument(argument)
        driver = await asyncio.to_thread(webdriver.Chrome, service=Service(CHROMEDRIVER), options=options)
        return cls(driver)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def quit(self) -> None:
        await self._run(self._driver.quit)

    async def open(self, url: str) -> None:
        await self._run(self._driver.get, url)

    async def fill(self, css: str, text: str) -> None:
        def fill() -> None:
            field = self._driver.find_element(By.CSS_SELECTOR, css)
            field.clear()
            field.send_keys(text)
        await self._run(fill)

    async def click(self, css: str) -> None:
        await self._run(lambda: self._driver.find_element(By.CSS_SELECTOR, css).click())

    async def text(self, css: str) -> str:
        return await self._run(lambda: self._driver.find_element(By.CSS_SELECTOR, css).text)

    async def script(self, js: str, *args: Any) -> Any:
        """Run `js` in the page (its arguments as `arguments[n]`); what it returns."""
        return await self._run(self._driver.execute_script, js, *args)

    async def page_source(self) -> str:
        return await self._run(lambda: self._driver.page_source)

    async def url(self) -> str:
        return await self._run(lambda: self._driver.current_url)

    async def until(self, condition: Callable[[WebDriver], T], timeout_s: float, what: str) -> T:
        """Poll `condition` in the browser until it returns something truthy."""
        def wait() -> T:
            try:
                return WebDriverWait(self._driver, timeout_s, poll_frequency=POLL_S,
                                     ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                                     ).until(condition)
            except TimeoutException:
                raise TimeoutError(f"browser: not within {timeout_s:.1f} s: {what}") from None
        return await self._run(wait)

    async def visible(self, css: str, timeout_s: float, what: str = "") -> None:
        await self.until(lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed(), timeout_s, what or css)

    async def gone(self, css: str, timeout_s: float, what: str = "") -> None:
        await self.until(lambda d: not d.find_elements(By.CSS_SELECTOR, css), timeout_s, what or f"{css} gone")

    async def text_is(self, css: str, expected: str, timeout_s: float) -> None:
        await self.until(lambda d: d.find_element(By.CSS_SELECTOR, css).text == expected, timeout_s,
                         f"{css} reading {expected!r}")

    async def text_has(self, css: str, expected: str, timeout_s: float) -> str:
        def has(d: WebDriver) -> str | None:
            text = d.find_element(By.CSS_SELECTOR, css).text
            return text if expected in text else None
        return await self.until(has, timeout_s, f"{css} saying {expected!r}")

    async def screenshot(self, name: str) -> Path:
        """Save `name`.png among the test artefacts (and as the README's copy when asked)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self._run(self._driver.save_screenshot, str(path))
        if UPDATE_README_SCREENSHOTS:
            README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_SCREENSHOTS / path.name)
        return path
