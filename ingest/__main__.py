"""`python -m ingest`: store the fleet's telemetry in PostgreSQL or Supabase.

`python -m ingest rebuild [VIN ...]` derives drives, charges and parks again from the stored history
(all vehicles, or the ones named) and exits: after changing a threshold, or to backfill history that
was stored before derivation existed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

from common.alerts import AlertSettings
from common.database import apply_migrations, create_pool
from common.lifecycle import run_program
from common.settings import DatabaseSettings, MqttSettings
from ingest.app import Ingest, choose_sink, open_sink
from ingest.period_store import rebuild
from ingest.periods import PeriodSettings
from ingest.settings import IngestSettings

log = logging.getLogger("ingest")


async def main(stop: asyncio.Event) -> None:
    settings = IngestSettings.from_env()  # loads .env into the environment first
    environ = dict(os.environ)
    mqtt_settings = MqttSettings.from_env()
    sink = await open_sink(choose_sink(settings, environ), environ, stop)
    if sink is None:
        return
    try:
        await Ingest(settings, mqtt_settings, sink, AlertSettings.from_env()).run(stop)
    finally:
        await sink.close()


def rebuild_command(vins: list[str]) -> None:
    async def run(_stop: asyncio.Event) -> None:
        IngestSettings.from_env()  # loads .env
        pool = await create_pool(DatabaseSettings.from_env(), max_size=1)
        try:
            await apply_migrations(pool)
            started = time.perf_counter()
            async with pool.acquire() as conn:
                counts = await rebuild(conn, PeriodSettings.from_env(), vins or None)
            log.info(
                "rebuilt drives, charges and parks of %d vehicles from %d readings in %.1fs",
                len(counts),
                sum(counts.values()),
                time.perf_counter() - started,
            )
        finally:
            await pool.close()

    run_program("ingest", run, os.environ.get("LOG_LEVEL", "INFO"))


def migrate_command() -> None:
    """Apply the migrations not applied yet to DATABASE_URL, as every program does at start."""

    async def run(_stop: asyncio.Event) -> None:
        IngestSettings.from_env()  # loads .env
        pool = await create_pool(DatabaseSettings.from_env(), max_size=1)
        try:
            applied = await apply_migrations(pool)
            log.info("applied %d migration(s): %s", len(applied), ", ".join(applied) or "none were due")
        finally:
            await pool.close()

    run_program("ingest", run, os.environ.get("LOG_LEVEL", "INFO"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("migrate", help="apply the database migrations not applied yet, then exit")
    rebuild_parser = commands.add_parser("rebuild", help="derive drives, charges and parks again from history")
    rebuild_parser.add_argument("vins", nargs="*", metavar="VIN", help="only these vehicles (default: all)")
    args = parser.parse_args()
    if args.command == "rebuild":
        rebuild_command(args.vins)
    elif args.command == "migrate":
        migrate_command()
    else:
        run_program("ingest", main, os.environ.get("LOG_LEVEL", "INFO"))
