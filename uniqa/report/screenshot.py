"""A PNG of a written report through headless Chromium (the first of :data:`BROWSERS` found on PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from uniqa.errors import UniqaError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1280, 4000)  # width, height in CSS pixels
TIMEOUT_S = 120


def find_browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise UniqaError(f"--screenshot needs headless Chromium: none of {', '.join(BROWSERS)} is on PATH "
                     "(Debian/Ubuntu: apt-get install chromium)")


def parse_window(text: str) -> tuple[int, int]:
    """``"1280x4000"`` -> (1280, 4000)."""
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise UniqaError(f"--window-size {text!r} is not WIDTHxHEIGHT in pixels, e.g. 1280x4000")
    return int(width), int(height)


def screenshot(html_path: str, png_path: str, window: tuple[int, int] = WINDOW) -> str:
    """Render the local file ``html_path`` at ``window`` and write ``png_path``; returns ``png_path``."""
    if "://" in html_path or not os.path.isfile(html_path):
        raise UniqaError(f"--screenshot needs the report as a local file; {html_path} is not one")
    browser = find_browser()
    png = os.path.abspath(png_path)
    os.makedirs(os.path.dirname(png), exist_ok=True)
    if os.path.exists(png):
        os.remove(png)
    with tempfile.TemporaryDirectory(prefix="uniqa-chromium-") as profile:  # no shared profile lock between runs
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={window[0]},{window[1]}",
                   "file://" + os.path.abspath(html_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UniqaError(f"{browser} did not finish the screenshot within {TIMEOUT_S} s") from None
    if done.returncode != 0 or not os.path.isfile(png):
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise UniqaError(f"{browser} wrote no screenshot {png} (exit {done.returncode}): {tail}")
    return png_path
