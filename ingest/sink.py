"""Where a flush goes: one interface, two sinks (PostgreSQL through asyncpg, Supabase REST)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from ingest.cache import VehicleSnapshot
from ingest.dead_letters import DeadLetter
from ingest.devices import DeviceReports
from ingest.rows import FlushResult


class SinkError(Exception):
    """The sink did not take the write; the flusher keeps the batch and tries again later.

    `permanent`: the database refused the data itself (SQLSTATE classes 22, 23), so trying the
    same rows again cannot succeed.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def refuses_the_data(sqlstate: str | None) -> bool:
    """Data exceptions (22xxx) and integrity violations (23xxx): the rows, not the database, are at fault."""
    return (sqlstate or "")[:2] in {"22", "23"}


STORED_STATES_PAGE = 500


class Sink(Protocol):
    name: str

    async def ready(self) -> None:
        """Raise SinkError until the sink can take writes (reachable, schema in place)."""

    async def write(self, snapshots: list[VehicleSnapshot]) -> FlushResult:
        """Write vehicles, latest state and history; idempotent, so a batch may be written twice."""

    async def write_vehicles(self, vehicles: list[dict[str, Any]]) -> None:
        """Vehicle rows (`rows.VEHICLE_COLUMNS`) on their own, ahead of the flush that writes their readings."""
        ...

    async def write_dead_letters(self, letters: list[DeadLetter]) -> None: ...

    async def write_device_reports(self, reports: DeviceReports) -> int:
        """Directly connected devices' telemetry, online state and configuration answers; returns
        the telemetry rows added. Idempotent, as `write`."""
        ...

    async def stored_states_page(self, after_vin: str) -> list[dict[str, Any]]:
        """Up to STORED_STATES_PAGE stored vehicles after `after_vin`: `vin`, `account`, `ts`, `state`."""
        ...

    async def close(self) -> None: ...


async def stored_states(sink: Sink) -> AsyncIterator[list[dict[str, Any]]]:
    """Every stored vehicle's latest state, a page at a time, in VIN order."""
    after = ""
    while page := await sink.stored_states_page(after):
        yield page
        after = page[-1]["vin"]
