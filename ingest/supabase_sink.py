"""The Supabase REST sink, through the `supabase` client (PostgREST under it).

Neither the latest state (it moves only for a newer reading) nor the history (a late value completes
its reading's row) is a plain PostgREST upsert, so both go through SQL functions over RPC:
`ingest_vehicle_states` and `ingest_telemetry`, the JSON entry points to what the PostgreSQL sink
calls with arrays. The two requests are not one transaction; both are idempotent, so a batch that
fails between them is simply written again.
"""

from __future__ import annotations

from typing import Any

import httpx
from postgrest import APIError, ReturnMethod
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from common.values import to_json
from ingest.cache import VehicleSnapshot
from ingest.dead_letters import DeadLetter
from ingest.devices import DeviceReports
from ingest.rows import FlushResult, plan_rows
from ingest.settings import SupabaseSettings
from ingest.sink import STORED_STATES_PAGE, SinkError, refuses_the_data

INGEST_FUNCTION = "ingest_vehicle_states"
TELEMETRY_FUNCTION = "ingest_telemetry"
STORED_STATES_FUNCTION = "stored_vehicle_states"
DEVICE_REPORTS_FUNCTION = "ingest_device_reports"

HINTS = {
    "PGRST202": f"the database has no {INGEST_FUNCTION}() function: apply the SQL files in migrations/ "
    "(the command API applies them at start over DATABASE_URL, or run them with psql / `supabase db push`)",
    "PGRST205": "a table is missing: apply the SQL files in migrations/",
    "42501": "permission denied: migrations/0005_supabase_security.sql grants service_role what the ingest needs; "
    "check that SUPABASE_SERVICE_ROLE_KEY is the service-role (secret) key",
    "PGRST301": "the key was refused: SUPABASE_SERVICE_ROLE_KEY must be the project's service-role (secret) key",
}


def _error(exc: Exception) -> SinkError:
    if isinstance(exc, APIError):
        text = f"Supabase refused the write: {exc.code} {exc.message}"
        if exc.details:
            text += f" ({exc.details})"
        if hint := HINTS.get(exc.code or ""):
            text += f"; {hint}"
        return SinkError(text, permanent=refuses_the_data(exc.code))
    return SinkError(f"Supabase is unreachable: {type(exc).__name__}: {exc}")


def _json_ready(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their datetimes in ISO 8601, as PostgREST takes them: a row's own, and those in its
    `state` or `payload` document."""
    return [{k: _iso(v) for k, v in row.items()} for row in rows]


def _iso(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return to_json(value)


class SupabaseSink:
    name = "supabase"

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, settings: SupabaseSettings) -> SupabaseSink:
        options = AsyncClientOptions(
            schema="public",
            auto_refresh_token=False,
            persist_session=False,
            httpx_client=httpx.AsyncClient(timeout=settings.timeout, follow_redirects=True),
        )
        client = await acreate_client(settings.url, settings.service_role_key.get_secret_value(), options)
        return cls(client)

    async def _rpc(self, vehicles: list[dict[str, Any]], states: list[dict[str, Any]]) -> int:
        response = await self.client.rpc(INGEST_FUNCTION, {"vehicle_rows": vehicles, "state_rows": states}).execute()
        return response.data if isinstance(response.data, int) else 0

    async def ready(self) -> None:
        try:
            await self._rpc([], [])
        except (APIError, httpx.HTTPError) as exc:
            raise _error(exc) from exc

    async def write(self, snapshots: list[VehicleSnapshot]) -> FlushResult:
        if not snapshots:
            return FlushResult(0, 0, 0)
        rows = plan_rows(snapshots)
        history = _json_ready(rows.telemetry)
        inserted = 0
        try:
            moved = await self._rpc(_json_ready(rows.vehicles), _json_ready(rows.states))
            if history:
                response = await self.client.rpc(TELEMETRY_FUNCTION, {"telemetry_rows": history}).execute()
                inserted = response.data if isinstance(response.data, int) else 0
        except (APIError, httpx.HTTPError) as exc:
            raise _error(exc) from exc
        return FlushResult(len(rows.vehicles), moved, inserted)

    async def write_vehicles(self, vehicles: list[dict[str, Any]]) -> None:
        try:
            await self._rpc(_json_ready(vehicles), [])
        except (APIError, httpx.HTTPError) as exc:
            raise _error(exc) from exc

    async def stored_states_page(self, after_vin: str) -> list[dict[str, Any]]:
        arguments = {"after_vin": after_vin, "page_size": STORED_STATES_PAGE}
        try:
            response = await self.client.rpc(STORED_STATES_FUNCTION, arguments).execute()
        except (APIError, httpx.HTTPError) as exc:
            raise _error(exc) from exc
        return response.data if isinstance(response.data, list) else []

    async def write_dead_letters(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        rows = [
            {
                "received_at": item.received_at.isoformat(),
                "topic": item.topic,
                "payload": "\\x" + item.payload.hex(),  # bytea's hex input format
                "reason": item.reason,
            }
            for item in letters
        ]
        try:
            await self.client.table("dead_letters").insert(rows, returning=ReturnMethod.minimal).execute()
        except (APIError, httpx.HTTPError) as exc:
            raise _error(exc) from exc

    async def write_device_reports(self, reports: DeviceReports) -> int:
        if not reports:
            return 0
        arguments = {kind: _json_ready(rows) for kind, rows in zip(reports.KINDS, reports.lists(), strict=True)}
        try:
            response = await self.client.rpc(DEVICE_REPORTS_FUNCTION, arguments).execute()
        except (APIError, httpx.HTTPError) as exc:
            raise _error(exc) from exc
        return response.data if isinstance(response.data, int) else 0

    async def close(self) -> None:
        await self.client.postgrest.session.aclose()
