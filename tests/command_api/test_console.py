"""The operations console in a real browser (Debian's headless Chromium through WebDriver), against
the real API, gateway (simulated fleet), ingest, broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bench.browser import chromium, find_chromium
from common.settings import DatabaseSettings, MqttSettings
from gateway.app import Gateway
from gateway.simulator import SimulatedFleet
from tests.command_api.conftest import API_KEY, Api, running_api
from tests.gateway.test_gateway import running_gateway, vin
from tests.helpers import wait_until
from tests.ingest.test_ingest import running_ingest

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Chromium is not installed (scripts/test installs chromium and chromium-driver with apt-get as root)",
)
SECONDS = 20


def wait_for(browser: WebDriver, what: str, condition: Callable[[WebDriver], Any]) -> Any:
    # The live view re-renders its rows as changes arrive: an element found a moment ago may be gone.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(browser, SECONDS, 0.1, ignored_exceptions=ignored).until(condition, message=what)


def click(browser: WebDriver, selector: str) -> None:
    def clicked(b: WebDriver) -> bool:
        b.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_for(browser, f"a click on {selector}", clicked)


@pytest.fixture
async def fleet_stack(private_mqtt: MqttSettings, db_settings: DatabaseSettings) -> AsyncIterator[tuple[Api, Gateway]]:
    # A broker of its own: cars other tests left retained on the session's broker would reach this
    # ingest and the console would list more than these two.
    async with (
        running_ingest(private_mqtt, db_settings),
        running_gateway(private_mqtt, vehicles=2) as gateway,
        running_api(private_mqtt, db_settings) as api,
    ):
        yield api, gateway


async def test_the_console_shows_the_fleet_live_runs_a_command_and_draws_a_drive(
    fleet_stack: tuple[Api, Gateway], tmp_path: Path
) -> None:
    api, gateway = fleet_stack
    fleet = gateway.source
    assert isinstance(fleet, SimulatedFleet)
    first = fleet.vehicle(vin(1))  # drives from the start (the simulator's opening)
    start_km = first.mileage_km

    with chromium() as browser:

        def sign_in() -> None:
            browser.get(f"{api.base}/console/")
            wait_for(browser, "the sign-in form", lambda b: b.find_element(By.ID, "credential"))
            browser.find_element(By.ID, "credential").send_keys(API_KEY)
            browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
            wait_for(browser, "both cars", lambda b: len(b.find_elements(By.CSS_SELECTOR, "#fleet tr[data-vin]")) == 2)
            assert "credential" not in browser.current_url
            assert API_KEY not in browser.current_url
            browser.execute_script("window.notReloaded = true")

        await asyncio.to_thread(sign_in)
        row = browser.find_element(By.CSS_SELECTOR, f"#fleet tr[data-vin='{vin(1)}']")
        first.soc = 21.0  # the car reports a new SoC on its next poll

        def live_soc() -> None:
            cell = f"#fleet tr[data-vin='{vin(1)}'] [data-field=soc]"
            wait_for(browser, "the new SoC, live", lambda b: "21.0 %" in b.find_element(By.CSS_SELECTOR, cell).text)
            assert browser.execute_script("return window.notReloaded") is True
            # Updated in place: the row under a pointer (or a click) is not replaced by each change.
            assert browser.execute_script("return arguments[0].isConnected", row) is True
            browser.save_screenshot(str(tmp_path / "fleet.png"))
            # Every car's name on the map is whole: none runs past the map's edges.
            cut = browser.execute_script(
                """return [...document.querySelectorAll("svg.map .marker text")].filter((text) => {
                    const map = text.ownerSVGElement.getBoundingClientRect(), box = text.getBoundingClientRect();
                    return box.right > map.right + 0.5 || box.left < map.left - 0.5;
                }).map((text) => text.textContent)"""
            )
            assert cut == [], cut

        await asyncio.to_thread(live_soc)

        def lock() -> None:
            click(browser, f"#fleet tr[data-vin='{vin(1)}']")
            click(browser, "[data-command=lock]")
            status = "#lifecycle li[data-command=lock] [data-testid=command-status]"
            wait_for(browser, "lock succeeded", lambda b: b.find_element(By.CSS_SELECTOR, status).text == "succeeded")

        await asyncio.to_thread(lock)

        async def drive_recorded() -> bool:
            status, body = await api.call("GET", f"/api/vehicles/{vin(1)}/drives")
            return status == 200 and any(not d["in_progress"] and d["distance_km"] > 0 for d in body["items"])

        # Some road first (the odometer counts in 0.1 km), then the drive ends at a charger, where the
        # low battery sends the car: plugging in ends a drive at once (a stop must last
        # DRIVE_STOP_GRACE first).
        await wait_until(lambda: first.mileage_km - start_km >= 0.3, timeout=60, what="0.3 km driven")
        first.phase_ends_at = time.time()
        await wait_until(drive_recorded, timeout=SECONDS, what="a finished drive")

        def drive_on_the_map() -> None:
            browser.execute_script("location.hash = '#/fleet'")
            browser.execute_script(f"location.hash = '#/vehicle/{vin(1)}'")
            row = wait_for(browser, "the drive", lambda b: b.find_element(By.CSS_SELECTOR, "#drives tr[data-drive]"))
            assert "km" in row.text
            click(browser, "#drives tr[data-drive]")
            wait_for(browser, "its path", lambda b: b.find_elements(By.CSS_SELECTOR, "#vehicle-map polyline.path"))
            browser.save_screenshot(str(tmp_path / "vehicle.png"))
            log = browser.get_log("browser")  # type: ignore[no-untyped-call]
            severe = [e for e in log if e["level"] == "SEVERE" and "favicon" not in e["message"]]
            assert severe == [], severe

        await asyncio.to_thread(drive_on_the_map)


async def test_the_console_explains_a_refused_key(fleet_stack: tuple[Api, Gateway]) -> None:
    api, _ = fleet_stack
    with chromium() as browser:

        def refused() -> None:
            browser.get(f"{api.base}/console/")
            wait_for(browser, "the sign-in form", lambda b: b.find_element(By.ID, "credential"))
            browser.find_element(By.ID, "credential").send_keys("not-a-valid-key-at-all")
            browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
            notice = wait_for(browser, "the notice", lambda b: b.find_element(By.ID, "notice").text)
            assert "refused" in notice
            assert browser.find_elements(By.ID, "sign-in")  # still on the sign-in page

        await asyncio.to_thread(refused)


async def test_the_operations_view_lists_accounts_devices_and_rollouts(
    fleet_stack: tuple[Api, Gateway], db_settings: DatabaseSettings, tmp_path: Path
) -> None:
    api, _ = fleet_stack
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:  # as the gateway leaves an account whose password changed in the app
        await conn.execute(
            "INSERT INTO accounts (username, password_encrypted, status, status_reason)"
            " VALUES ('owner@example.com', 'x', 'failing', 'return code: 15019, message: Incorrect password')"
        )
        # A device online on firmware 2.0.0 and a rollout that paused itself, as the programs leave them.
        org = await conn.fetchval("INSERT INTO organizations (name) VALUES ('Sensors') RETURNING id")
        await conn.execute(
            "INSERT INTO devices (device_id, mac, organization_id, name, secret_encrypted, online, last_seen,"
            " firmware_version, config_version) VALUES ($1, '02:00:00:00:00:aa', $2, 'Gate radar', 'x', true, now(),"
            " '2.0.0', 3)",
            "ab" * 16,
            org,
        )
        firmware = await conn.fetchval(
            "INSERT INTO firmware (version, url, sha256, signature, created_by)"
            " VALUES ('2.1.0', 'https://example.com/2.1.0.bin', $1, 'sig', 'api-key:ops') RETURNING id",
            "0" * 64,
        )
        rollout = await conn.fetchval(
            "INSERT INTO rollouts (organization_id, firmware_id, stages, status, status_reason, created_by)"
            " VALUES ($1, $2, '{10,100}', 'paused', '1 of 1 devices failed', 'api-key:ops') RETURNING id",
            org,
            firmware,
        )
        await conn.execute(
            "INSERT INTO rollout_devices (rollout_id, device_id, stage, status) VALUES ($1, $2, 0, 'failed')",
            rollout,
            "ab" * 16,
        )
    finally:
        await conn.close()
    with chromium() as browser:

        def accounts_listed() -> None:
            browser.get(f"{api.base}/console/")
            wait_for(browser, "the sign-in form", lambda b: b.find_element(By.ID, "credential"))
            browser.find_element(By.ID, "credential").send_keys(API_KEY)
            browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
            wait_for(browser, "the fleet", lambda b: b.find_elements(By.CSS_SELECTOR, "#fleet tr[data-vin]"))
            browser.execute_script("location.hash = '#/ops'")
            row = wait_for(browser, "the account", lambda b: b.find_element(By.CSS_SELECTOR, "#accounts tbody tr td"))
            text = browser.find_element(By.CSS_SELECTOR, "#accounts tbody").text
            assert "owner@example.com" in text, text
            assert "failing" in text
            assert "Incorrect password" in text
            assert row.is_displayed()
            devices = wait_for(
                browser, "the device", lambda b: b.find_element(By.CSS_SELECTOR, "#devices tbody tr[data-device]")
            )
            assert "Gate radar" in devices.text
            assert "online" in devices.text
            assert "2.0.0" in devices.text
            assert "(1 of 1 online)" in browser.find_element(By.ID, "devices-total").text
            rollouts = browser.find_element(By.CSS_SELECTOR, "#rollouts tbody tr[data-rollout]").text
            assert "paused" in rollouts
            assert "1 failed" in rollouts
            browser.execute_script("document.querySelector('#devices').scrollIntoView()")
            browser.save_screenshot(str(tmp_path / "ops.png"))

        await asyncio.to_thread(accounts_listed)
    print(f"\n[console] {tmp_path / 'ops.png'}")
