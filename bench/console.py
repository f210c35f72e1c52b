"""The console as a person sees it, in headless Chromium: load time and the time for a live change to
reach the page; and screenshots of its three views for the docs.

- Load time: from navigation to the fleet view drawn with its data (`performance.mark("fleet-rendered")`
  in console.js), with the key already in the tab, N loads; the page's own `load` event beside it.
- Live update: a SoC published to the broker as the gateway would, until the fleet table shows it
  (a MutationObserver in the page notes the time; the clock is this machine's for both ends).

    .venv/bin/python -m bench.console [--loads 20] [--updates 30] [--broker mosquitto]
    .venv/bin/python -m bench.console --url http://127.0.0.1:8080 --screenshots docs/console

With --url (a running `scripts/run`, two minutes in so that a drive and a charge exist; the key from
`--key-file`, by default .data/dev-api-key), it only takes the screenshots: fleet.png, vehicle.png
and operations.png.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import aiomqtt
from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bench import run
from bench.browser import chromium
from bench.servers import running_backend
from bench.stats import percentile
from command_api.app import create_app
from command_api.routes import MQTT
from command_api.settings import ApiSettings
from common import topics
from gateway.simulator import simulated_vin
from local_stack.ports import free_port

KEY = "bench-console-key-0123456789"
ROWS = "#fleet tr[data-vin]"


def sign_in(browser: WebDriver, base: str, key: str) -> None:
    browser.get(f"{base}/console/")
    browser.execute_script("sessionStorage.setItem('vehicle-backend.credential', arguments[0])", key)


def wait_rows(browser: WebDriver, count: int) -> None:
    WebDriverWait(browser, 30, 0.01).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ROWS)) >= count)


def measure_loads(browser: WebDriver, base: str, loads: int, vehicles: int) -> tuple[list[float], list[float]]:
    rendered, loaded = [], []
    for _ in range(loads):
        browser.get("about:blank")  # a real load each time (the same URL again would not reload)
        browser.get(f"{base}/console/#/fleet")
        wait_rows(browser, vehicles)
        WebDriverWait(browser, 10, 0.01).until(
            lambda b: b.execute_script("return performance.getEntriesByName('fleet-rendered').length")
        )
        rendered.append(browser.execute_script("return performance.getEntriesByName('fleet-rendered')[0].startTime"))
        loaded.append(browser.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd"))
    return rendered, loaded


WATCH = """
window.seen = {};
new MutationObserver(() => {
  for (const cell of document.querySelectorAll("#fleet tr[data-vin='" + arguments[0] + "'] [data-field=soc]")) {
    const match = cell.textContent.match(/([0-9.]+) %/);
    if (match && !(match[1] in window.seen)) window.seen[match[1]] = Date.now();
  }
}).observe(document.querySelector("#fleet tbody"), {childList: true, subtree: true, characterData: true});
"""


async def measure_updates(browser: WebDriver, mqtt_port: int, password: str, vin: str, updates: int) -> list[float]:
    await asyncio.to_thread(browser.execute_script, WATCH, vin)
    latencies = []
    async with aiomqtt.Client("127.0.0.1", mqtt_port, username="gateway", password=password) as gateway:
        for i in range(updates):
            value = f"{10 + i}.3"  # not a value the simulated car reaches on its own in this run
            sent = time.time() * 1000
            await gateway.publish(f"saic/simulator@example.com/vehicles/{vin}/{topics.DRIVETRAIN_SOC}", value, qos=1)
            deadline = time.monotonic() + 10
            while (seen := await asyncio.to_thread(browser.execute_script, f"return window.seen['{value}']")) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"SoC {value} never reached the page")
                await asyncio.sleep(0.005)
            latencies.append(seen - sent)
            await asyncio.sleep(0.2)
    return latencies


def screenshots(base: str, key: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with chromium(1440, 1100) as browser:
        sign_in(browser, base, key)
        browser.get(f"{base}/console/#/fleet")
        wait_rows(browser, 1)
        time.sleep(2)  # the map and a live update or two
        browser.save_screenshot(str(folder / "fleet.png"))
        browser.get(f"{base}/console/#/vehicle/{simulated_vin(1)}")
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#drives tr[data-drive]"))
        browser.find_element(By.CSS_SELECTOR, "[data-command=lock]").click()
        WebDriverWait(browser, 30).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, "#lifecycle [data-testid=command-status].succeeded")
        )
        browser.find_element(By.CSS_SELECTOR, "#drives tr[data-drive]").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#vehicle-map polyline.path"))
        browser.set_window_size(1440, 1900)  # the whole page: state, commands, charts, drives, charges
        browser.execute_script("window.scrollTo(0, 0)")
        time.sleep(1)
        browser.save_screenshot(str(folder / "vehicle.png"))
        browser.set_window_size(1440, 1100)
        browser.get(f"{base}/console/#/ops")
        browser.refresh()
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#health [data-component]"))
        time.sleep(2)
        browser.save_screenshot(str(folder / "operations.png"))
    print(f"screenshots in {folder}: fleet.png, vehicle.png, operations.png")


async def benchmark(loads: int, updates: int, implementation: str) -> None:
    vehicles = 3
    async with running_backend(implementation, vehicles=vehicles, flush_interval=1.0) as backend:
        port = free_port()
        app = create_app(ApiSettings.from_env({"PORT": str(port), "COMMAND_API_KEY": KEY}), backend.mqtt, backend.db)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await app[MQTT].wait_connected(10)
        base = f"http://127.0.0.1:{port}"
        with chromium() as browser:
            await asyncio.to_thread(sign_in, browser, base, KEY)
            await asyncio.to_thread(browser.get, f"{base}/console/#/fleet")
            await asyncio.to_thread(wait_rows, browser, vehicles)  # the ingest stores the fleet; the page follows
            rendered, loaded = await asyncio.to_thread(measure_loads, browser, base, loads, vehicles)
            await asyncio.to_thread(browser.get, f"{base}/console/#/fleet")
            await asyncio.to_thread(wait_rows, browser, vehicles)
            latencies = await measure_updates(
                browser, backend.mqtt.port, backend.mqtt.password_for("gateway"), simulated_vin(3), updates
            )
        await runner.cleanup()
    print(f"console, {vehicles} vehicles, broker {implementation}, headless Chromium:")
    print(
        f"  load to fleet drawn with data  p50 {statistics.median(rendered):6.0f} ms, "
        f"max {max(rendered):6.0f} ms over {loads} loads (page load event p50 {statistics.median(loaded):.0f} ms)"
    )
    print(
        f"  live update, broker to page    p50 {statistics.median(latencies):6.1f} ms, "
        f"p95 {percentile(latencies, 0.95):6.1f} ms over {updates} changes"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--broker", default="mosquitto", choices=["mosquitto", "amqtt"])
    parser.add_argument("--url", help="a running backend: only take screenshots of it")
    parser.add_argument("--key-file", type=Path, default=Path(".data/dev-api-key"))
    parser.add_argument("--screenshots", type=Path, help="folder for fleet.png, vehicle.png, operations.png")
    args = parser.parse_args()
    if args.url:
        screenshots(args.url.rstrip("/"), args.key_file.read_text().strip(), args.screenshots or Path("docs/console"))
    else:
        run(benchmark(args.loads, args.updates, args.broker))
