"""A real browser through what newcomers and operators do: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) against the live server.

Log in to the browsable API, post two turns in a row through its HTML form, log in to the admin,
read the cost review and its chart, export the CSV and check its sums against the totals on the
page (the CSV button overlapping none of the page's tables), adjust a balance, activate a draft price
list through its confirmation page with the changes. A screenshot of each step lands in
var/screenshots/. Off CI, without Chromium, it skips with the reason; with CI=true it must run.
"""

import csv
import io
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Sum

from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.tests.factories import SessionFactory
from usage.formatting import credits_display, usd_display
from usage.models import CreditAccount, CreditLedgerEntry, PricingVersion
from usage.services.pricing import pricing_version_copy
from usage.tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "a-browser-passphrase-7"
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
WIDTH, HEIGHT = 1280, 900


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason} (.ci/run installs chromium and chromium-driver)")
    pytest.skip(f"{reason}: install Debian's chromium and chromium-driver to run the browser test")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed")
    chromium, driver_path = shutil.which("chromium") or CHROMIUM, shutil.which("chromedriver") or CHROMEDRIVER
    if not (os.access(chromium, os.X_OK) and os.access(driver_path, os.X_OK)):
        _unavailable("Chromium or its driver is missing")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium must never try to download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


class Steps:
    """The browser, the server, and a numbered screenshot per step."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver, self.base_url, self.count = driver, base_url, 0

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def shot(self, name: str) -> None:
        self.count += 1
        self.driver.save_screenshot(str(SCREENSHOTS / f"{self.count:02d}-{name}.png"))

    def find(self, css: str, timeout: float = 20):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def navigate_by(self, element, action=None) -> None:
        """Click ``element`` (or run ``action``) and wait until the page it was on is gone."""
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        (action or element.click)()
        WebDriverWait(self.driver, 60).until(ec.staleness_of(element))

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def log_in(self, path: str, username: str) -> None:
        self.open(path)
        self.find("input[name=username]").send_keys(username)
        password = self.find("input[name=password]")
        password.send_keys(PASSWORD)
        self.navigate_by(password, password.submit)


def overlaps(a, b) -> bool:
    """Whether two elements' rectangles on the page share any area."""
    ra, rb = a.rect, b.rect
    return (
        ra["x"] < rb["x"] + rb["width"]
        and rb["x"] < ra["x"] + ra["width"]
        and ra["y"] < rb["y"] + rb["height"]
        and rb["y"] < ra["y"] + ra["height"]
    )


def post_turn(steps: Steps, text: str, mode: str) -> str:
    from selenium.webdriver.support.ui import Select

    form = steps.find("form[method=POST][enctype='multipart/form-data']")
    box = form.find_element("css selector", "textarea[name=user_input]")
    box.clear()
    box.send_keys(text)
    Select(form.find_element("css selector", "select[name=mode]")).select_by_value(mode)
    steps.navigate_by(form, form.find_element("css selector", "button.btn-primary").click)
    return steps.find(".response-info").text


def test_newcomer_and_operator_in_a_real_browser(browser, live_server):
    operator = UserFactory(username="operator", password=PASSWORD, is_staff=True, is_superuser=True)
    newcomer = UserFactory(username="newcomer", password=PASSWORD)
    room = RoomFactory(owner=newcomer, name="Writers' room")
    AgentFactory(room=room, agent_key="writer", name="Writer", position=0)
    AgentFactory(room=room, agent_key="critic", name="Critic", model_alias="qwen", position=1)
    session = SessionFactory(room=room, title="First draft")
    steps = Steps(browser, live_server.url)

    # 1. A newcomer logs in to the browsable API and lands on the session's turns.
    steps.log_in(f"/api-auth/login/?next=/api/v1/sessions/{session.pk}/turns", "newcomer")
    assert "newcomer" in steps.find(".navbar .nav.pull-right").text
    steps.shot("api-logged-in")

    # 2. Two turns in a row through the HTML form: it is there again after the first 201.
    first = post_turn(steps, "@writer Open with a storm.", "manual")
    assert "HTTP 201 Created" in first and "Writer:" in first
    steps.shot("api-first-turn")
    second = post_turn(steps, "Both of you, one line each.", "roundtable")
    assert "HTTP 201 Created" in second and '"turn_index": 2' in second
    steps.shot("api-second-turn")
    assert list(session.turns.order_by("turn_index").values_list("mode", flat=True)) == [
        "manual",
        "roundtable",
    ]

    # 3. The operator logs in to the admin and opens the cost review.
    browser.delete_all_cookies()
    steps.log_in("/admin/login/?next=/admin/usage/llmcallevent/", "operator")
    chart = steps.find("#cost-chart svg")
    assert chart.find_elements("css selector", "rect") and steps.all("#cost-chart .day-label")
    axis_titles = [t.text for t in steps.all("#cost-chart .axis-title")]
    assert "USD per day" in axis_titles[0] and axis_titles[1].startswith("day (")
    assert "Writers' room" in steps.find("#spend-by-room").text
    assert "newcomer" in steps.find("#spend-by-user").text
    steps.shot("admin-cost-review")
    # At 1,280 px, side bars open, the money columns are in view without scrolling the table sideways.
    results = steps.find("#changelist .results")
    browser.execute_script(
        "window.scrollTo(0, arguments[0].getBoundingClientRect().top + scrollY - 40)", results
    )
    visible_right = min(
        results.rect["x"] + results.rect["width"], browser.execute_script("return innerWidth")
    )
    assert browser.execute_script("return arguments[0].scrollLeft", results) == 0
    for column in ("cost", "credits"):
        header = steps.find(f"#result_list th.column-{column}")
        assert header.rect["x"] + header.rect["width"] <= visible_right, column
    steps.shot("admin-event-list")

    # 4. The CSV button covers none of the review's tables, and the CSV of this filter adds up to
    #    the totals on the page.
    browser.execute_script("window.scrollTo(0, 0)")
    button = steps.find("#export-csv")
    tables = steps.all("#usage-totals, [id^=spend-by-] table, #result_list")
    assert len(tables) >= 4 and button.is_displayed()
    assert [t.get_attribute("id") or t.text.split("\n")[0] for t in tables if overlaps(button, t)] == []
    steps.shot("admin-csv-button")
    totals = {cell.get_attribute("data-total"): cell for cell in steps.all("#usage-totals td[data-total]")}
    export_url = button.get_attribute("href")
    text = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);",
        export_url,
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    credits = sum((Decimal(r["credits_burned"]) for r in rows), Decimal(0))
    assert len(rows) == int(totals["events"].get_attribute("data-value")) > 0
    assert cost == Decimal(totals["cost_usd"].get_attribute("data-value"))
    assert credits == Decimal(totals["credits_burned"].get_attribute("data-value"))
    assert totals["cost_usd"].text == usd_display(cost) and totals["credits_burned"].text == credits_display(
        credits
    )
    assert {r["username"] for r in rows} == {"newcomer"} and {r["room_name"] for r in rows} == {
        "Writers' room"
    }
    steps.shot("admin-csv-checked")

    # 5. The operator tops the newcomer up through the admin action.
    from selenium.webdriver.support.ui import Select

    steps.open("/admin/usage/creditaccount/")
    row = next(r for r in steps.all("#result_list tbody tr") if "newcomer" in r.text)
    row.find_element("css selector", "input.action-select").click()
    Select(steps.find("select[name=action]")).select_by_value("adjust_balance")
    steps.navigate_by(steps.find("button[name=index]"))
    steps.find("#credit-adjust-form input[name=amount]").send_keys("250")
    steps.find("#credit-adjust-form input[name=note]").send_keys("Welcome top-up")
    steps.shot("admin-adjust-form")
    steps.navigate_by(steps.find("#credit-adjust-form input[type=submit]"))
    assert "Adjusted 1 balance by +250.0000 credits: newcomer." in steps.find("ul.messagelist").text
    steps.shot("admin-adjusted")

    entry = CreditLedgerEntry.objects.get(user=newcomer, kind=CreditLedgerEntry.Kind.ADJUSTMENT)
    assert (entry.amount, entry.note, entry.created_by) == (Decimal("250"), "Welcome top-up", operator)
    ledger = CreditLedgerEntry.objects.filter(user=newcomer).aggregate(total=Sum("amount"))["total"]
    assert CreditAccount.objects.get(user=newcomer).balance == ledger

    # 6. The operator activates a draft price list: its page has an Activate button, which shows
    #    the changes against the active list and asks to confirm.
    active = PricingVersion.objects.get(is_active=True)
    draft = pricing_version_copy(version=active, name="Spring prices")
    draft.prices.filter(model__alias="deepseek").update(input_usd_per_million=Decimal("0.5"))
    steps.open(f"/admin/usage/pricingversion/{draft.pk}/change/")
    steps.navigate_by(steps.find("a.activate-link"))
    summary = steps.find("#pricing-diff-summary").text
    assert "1 model changes price." in summary
    changed = next(r for r in steps.all("#pricing-diff tbody tr") if r.text.startswith("deepseek"))
    assert "changed" in changed.text and "→ 0.500000" in changed.text
    assert PricingVersion.objects.get(pk=draft.pk).is_draft  # looking changes nothing
    steps.shot("admin-price-activation")
    steps.navigate_by(steps.find(".submit-row input[type=submit]"))
    assert "“Spring prices” is now the active price list." in steps.find("ul.messagelist").text
    assert PricingVersion.objects.get(is_active=True).pk == draft.pk
    steps.shot("admin-price-activated")
