#!/usr/bin/env python3
"""A real browser walks the Warden console, for the console tests: headless Chromium
(Debian's `chromium` and `chromium-driver`) driven by Selenium.

  console_browser.py JSON
      JSON: {"url": the console's base URL, "admin": admin token, "read": read-only
      token, "phase": "main" or "rollout", "hostile": the hostile client name,
      "screenshots": a directory, or ""}. Prints one JSON object of what the browser saw;
      the Rust test asserts on it. Waits are conditions with deadlines, never sleeps.
"""

import json
import os
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

DEADLINE = 20


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


class Walk:
    def __init__(self, driver, plan):
        self.d, self.plan, self.seen = driver, plan, {}
        self.wait = WebDriverWait(driver, DEADLINE)

    def go(self, path):
        self.d.get(self.plan["url"] + path)

    def shot(self, name):
        if self.plan.get("screenshots"):
            self.d.save_screenshot(os.path.join(self.plan["screenshots"], name + ".png"))

    def text(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css).text

    def count(self, css):
        return len(self.d.find_elements(By.CSS_SELECTOR, css))

    def submit_sign_in(self, name, token):
        self.d.find_element(By.NAME, "name").send_keys(name)
        self.d.find_element(By.NAME, "token").send_keys(token)
        self.d.find_element(By.CSS_SELECTOR, "#signin button").click()

    def sign_in(self, name, token):
        self.d.delete_all_cookies()
        self.go("/")
        self.submit_sign_in(name, token)
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "header nav"))

    def hostile_ran(self):
        """Whether any planted markup acted: it would retitle the page or add an image."""
        return self.d.title == "pwned" or self.count("img") > 0 or self.d.execute_script("return !!window.__pwned")

    def main(self):
        s = self.seen
        # Signed out, every page sends the browser to the sign-in form.
        self.go("/denials")
        s["signed_out_redirected"] = self.count("#signin") == 1
        self.submit_sign_in("Ada", "wrong-token")
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#signin"))
        s["wrong_token_refused"] = "neither the admin token" in self.d.page_source
        self.submit_sign_in("Ada", self.plan["admin"])
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sidecars"))
        s["who"] = self.text("header .who")
        # The fleet: the NACKed sidecar, its error, the skew.
        s["nack_cells"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "#sidecars tr.nack td.nack-error")]
        s["skewed_rows"] = self.count("#sidecars tr.skew")
        self.shot("fleet")
        # A service: live traffic charts fill in from traffic.json.
        self.d.find_element(By.LINK_TEXT, "orders").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#traffic .route"))
        s["chart_routes"] = [e.get_attribute("data-route") for e in self.d.find_elements(By.CSS_SELECTOR, "#traffic .route")]
        s["routes_table"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "#routes tbody tr td:first-child")]
        if self.plan.get("screenshots"):
            # A few points on the charts for the picture.
            polls = lambda d: int(d.find_element(By.ID, "traffic").get_attribute("data-polls") or 0)
            self.wait.until(lambda d: polls(d) >= 5)
        self.shot("service")
        # A diff between two versions, chosen in the form.
        Select(self.d.find_element(By.NAME, "from")).select_by_visible_text("v1")
        Select(self.d.find_element(By.NAME, "to")).select_by_visible_text("v2")
        self.d.find_element(By.CSS_SELECTOR, "form.diff button").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "pre.diff"))
        s["diff_added"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "pre.diff .add")]
        s["diff_removed"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "pre.diff .del")]
        self.shot("diff")
        # The review queue: the hostile client's group is shown as text, and marked.
        self.go("/denials")
        rows = self.d.find_elements(By.CSS_SELECTOR, "#groups tr.group")
        s["groups"] = len(rows)
        s["new_groups"] = self.count("#groups tr.new")
        target = next(r for r in rows if r.find_element(By.CSS_SELECTOR, "td.client").text == self.plan["hostile"])
        s["hostile_shown_as_text"] = True
        group = target.get_attribute("data-group")
        s["group"] = group
        Select(target.find_element(By.NAME, "mark")).select_by_value("false-positive")
        target.find_element(By.NAME, "note").send_keys("partner load test, not abuse")
        target.find_element(By.NAME, "owner").send_keys("team-api")
        target.find_element(By.CSS_SELECTOR, "form.mark button").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#g-{group} .tag.false-positive"))
        row = self.d.find_element(By.CSS_SELECTOR, f"#g-{group}")
        s["mark_note"] = row.find_element(By.CSS_SELECTOR, ".note").text
        s["mark_owner"] = row.find_element(By.CSS_SELECTOR, ".owner").text
        s["explain_link"] = row.find_element(By.CSS_SELECTOR, "a.explain").get_attribute("href")
        s["hostile_ran_in_queue"] = self.hostile_ran()
        self.shot("denials")
        # A false positive's request, explained from the form it fills in.
        row.find_element(By.CSS_SELECTOR, "a.explain").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#explain"))
        s["explain_prefilled_path"] = self.d.find_element(By.NAME, "path").get_attribute("value")
        self.d.find_element(By.CSS_SELECTOR, "#explain button").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#verdict"))
        s["explain_verdict"] = self.text("#verdict")
        s["explain_steps"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "#steps tbody th")]
        self.shot("explain")
        # What would have let it through: the limit doubled, and its preview.
        self.go("/denials")
        self.d.find_element(By.CSS_SELECTOR, f"#g-{group} a.suggest").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#impact, p.error"))
        s["suggestion"] = self.text("h2")
        s["suggestion_added"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "pre.diff .add")]
        s["suggestion_impact"] = self.text("#impact") if self.count("#impact") else self.text("p.error")
        self.shot("suggestion")
        # Roll back, confirmed on a page that shows what changes.
        self.go("/services/orders")
        link = next(a for a in self.d.find_elements(By.CSS_SELECTOR, "a.rollback") if a.get_attribute("href").endswith("to=1"))
        link.click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm-rollback"))
        s["rollback_preview_lines"] = self.count("pre.diff .add") + self.count("pre.diff .del")
        self.d.find_element(By.NAME, "message").send_keys("back to v1 from the console")
        self.d.find_element(By.CSS_SELECTOR, "#confirm-rollback").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#versions"))
        s["live_after_rollback"] = self.text("#versions tr.live td:first-child")
        s["hostile_ran"] = self.hostile_ran()

    def rollout(self):
        s = self.seen
        self.sign_in("Ada", self.plan["admin"])
        self.go("/rollouts")
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "section.rollout"))
        s["rollout_heading"] = self.text("section.rollout h2")
        s["buttons"] = [b.text for b in self.d.find_elements(By.CSS_SELECTOR, "section.rollout button")]
        self.shot("rollouts")
        self.d.find_element(By.NAME, "reason").send_keys("seen enough")
        self.d.find_element(By.CSS_SELECTOR, "section.rollout button.abort").click()
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ended"))
        s["ended"] = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, "#ended tbody tr")]
        # Read-only: every page, no control that changes anything.
        self.sign_in("Rita", self.plan["read"])
        s["read_who"] = self.text("header .who")
        controls = 0
        for path in ("/", "/services/orders", "/denials", "/rollouts"):
            self.go(path)
            controls += self.count("form.mark") + self.count("a.rollback") + self.count("form.end")
        s["read_only_controls"] = controls
        self.go("/services/orders/rollback?to=1")
        s["read_only_rollback_refused"] = "read-only" in self.d.page_source and self.count("#confirm-rollback") == 0


def main():
    plan = json.loads(sys.argv[1])
    driver = browser()
    walk = Walk(driver, plan)
    try:
        getattr(walk, plan["phase"])()
    except Exception as e:  # reported, not raised: the test prints what was seen so far
        walk.seen["error"] = f"{type(e).__name__}: {e}"
        walk.seen["page"] = driver.current_url
    finally:
        driver.quit()
    print(json.dumps(walk.seen), flush=True)


if __name__ == "__main__":
    main()
