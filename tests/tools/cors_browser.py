#!/usr/bin/env python3
"""A real browser's cross-origin calls, for the CORS tests: headless Chromium (Debian's
`chromium` and `chromium-driver`) driven by Selenium.

  cors_browser.py JSON
      JSON lists calls, each {"page": URL, "url": URL, "init": fetch options,
      "headers": [names to read]}. For each, the browser opens `page` (its origin is the
      caller's) and runs fetch(url, init) there. Prints one JSON list of results:
      {"ok": true, "status", "body", "headers": {name: value or null}} when the page may
      read the answer, {"ok": false, "error"} when the browser refused it (CORS).
"""

import json
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FETCH = """
const [url, init, names, done] = arguments;
fetch(url, init)
  .then(async (r) => {
    const headers = {};
    for (const n of names) headers[n] = r.headers.get(n);
    done({ok: true, status: r.status, body: await r.text(), headers});
  })
  .catch((e) => done({ok: false, error: String(e)}));
"""


def main():
    calls = json.loads(sys.argv[1])
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(20)
    results = []
    try:
        for call in calls:
            driver.get(call["page"])
            results.append(driver.execute_async_script(FETCH, call["url"], call.get("init", {}), call.get("headers", [])))
    finally:
        driver.quit()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
