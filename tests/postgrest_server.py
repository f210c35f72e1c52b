"""A PostgREST-compatible test server backed by a real PostgreSQL (no PostgREST binary can be had
here: reference/storage.md §2). It speaks the part of PostgREST's HTTP API the ingest uses, the way
PostgREST does it:

- `POST /rest/v1/<table>` with `columns`, `on_conflict` and `Prefer: return=..., resolution=...`,
  executed as PostgREST's own statement (`INSERT ... SELECT ... FROM json_to_recordset(...)
  ON CONFLICT (...) DO NOTHING | DO UPDATE`);
- `POST /rest/v1/rpc/<function>` with named arguments (`json_to_record` of the body);
- the key in `apikey` / `Authorization: Bearer` chooses the database role (`SET LOCAL ROLE`), so
  grants and RLS are enforced by PostgreSQL itself;
- database errors come back as PostgREST's `{"code", "message", "details", "hint"}` with its
  `mapSQLtoHTTP` status (src/PostgREST/Error.hs).

Not emulated: JWT claims, GET/PATCH/DELETE, counts. Every request is recorded for shape checks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from local_stack.ports import free_port

CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: Any


@dataclass
class PostgrestServer:
    database_url: str
    keys: dict[str, str]
    """API key -> database role."""
    requests: list[RecordedRequest] = field(default_factory=list)
    unavailable: bool = False
    """While True every request gets PostgREST's 503 "could not connect" answer."""
    port: int = 0
    _runner: web.AppRunner | None = None
    _pool: asyncpg.Pool | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        app = web.Application(client_max_size=256 * 2**20, middlewares=[_errors])
        app.router.add_post("/rest/v1/rpc/{function}", self._rpc)
        app.router.add_post("/rest/v1/{table}", self._insert)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._pool is not None:
            await self._pool.close()

    # -- request handling -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _as_role(self, role: str) -> AsyncIterator[Any]:
        """A transaction as the key's database role, as PostgREST runs each request."""
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f'SET LOCAL ROLE "{role}"')
            yield conn

    async def _begin(self, request: web.Request) -> tuple[str, Any]:
        """Record the request, check its key; returns (role, parsed JSON body)."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            raise _error(400, "PGRST102", "Empty or invalid json", str(exc)) from None
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), request.headers.copy(), body)
        )
        if self.unavailable:
            raise _error(503, "PGRST000", "Could not connect with the database due to an incorrect db-uri")
        key = request.headers.get("apikey", "")
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if key not in self.keys or bearer != key:
            raise _error(401, "PGRST301", "No suitable key or wrong key type")
        return self.keys[key], body

    async def _insert(self, request: web.Request) -> web.Response:
        role, body = await self._begin(request)
        table = request.match_info["table"]
        prefer = _prefer(request.headers.getall("Prefer", []))
        rows = body if isinstance(body, list) else [body]
        async with self._as_role(role) as conn:
            types = await _column_types(conn, table)
            if types is None:
                raise _error(404, "PGRST205", f"Could not find the table 'public.{table}' in the schema cache")
            columns = _columns(request.query.get("columns"), rows)
            for name in columns:
                if name not in types:
                    raise _error(
                        400, "PGRST204", f"Could not find the '{name}' column of '{table}' in the schema cache"
                    )
            sql = _insert_sql(table, columns, types, request.query.get("on_conflict"), prefer)
            returned = await conn.fetch(sql, json.dumps(rows))
        headers = {"Content-Range": f"*/{len(returned)}"} if prefer.get("count") == "exact" else {}
        if prefer.get("return") == "representation":
            return web.json_response([json.loads(r["row"]) for r in returned], status=201, headers=headers)
        return web.Response(status=201, headers=headers)

    async def _rpc(self, request: web.Request) -> web.Response:
        role, body = await self._begin(request)
        function = request.match_info["function"]
        args = body if isinstance(body, dict) else {}
        async with self._as_role(role) as conn:
            signature = await _function_signature(conn, function, set(args))
            if signature is None:
                raise _error(
                    404,
                    "PGRST202",
                    f"Could not find the function public.{function}({', '.join(sorted(args))}) in the schema cache",
                )
            names = ", ".join(f'"{n}" := _."{n}"' for n in signature)
            record = ", ".join(f'"{n}" {t}' for n, t in signature.items())
            value = await conn.fetchval(
                f'SELECT to_json(public."{function}"({names}))::text FROM json_to_record($1::json) AS _({record})',
                json.dumps(args),
            )
        return web.Response(text=value or "null", content_type="application/json")


class PostgrestError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "details": details, "hint": None}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


def _error(status: int, code: str, message: str, details: str | None = None) -> PostgrestError:
    return PostgrestError(status, code, message, details)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as PostgREST reports it."""
    try:
        return await handler(request)
    except PostgrestError as exc:
        return exc.response()
    except asyncpg.PostgresError as exc:
        return _database_error(exc)
    except CONNECTION_ERRORS as exc:
        return _error(503, "PGRST000", f"Could not connect with the database: {exc}").response()


def _http_status(sqlstate: str) -> int:
    """PostgREST's mapSQLtoHTTP (src/PostgREST/Error.hs)."""
    exact = {"23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404, "42501": 403, "P0001": 400}
    if sqlstate in exact:
        return exact[sqlstate]
    by_class = {"08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500, "39": 500}
    by_class |= {"3B": 500, "40": 500, "53": 503, "54": 500, "55": 500, "57": 500, "58": 500, "F0": 500, "HV": 500}
    by_class |= {"P0": 500, "XX": 500}
    return by_class.get(sqlstate[:2], 400)


def _database_error(exc: asyncpg.PostgresError) -> web.Response:
    sqlstate = exc.sqlstate or "XX000"
    body = {
        "code": sqlstate,
        "message": exc.args[0] if exc.args else str(exc),
        "details": getattr(exc, "detail", None),
        "hint": getattr(exc, "hint", None),
    }
    return web.json_response(body, status=_http_status(sqlstate))


def _prefer(values: list[str]) -> dict[str, str]:
    prefer: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            name, _, setting = item.strip().partition("=")
            prefer[name] = setting
    return prefer


def _columns(query: str | None, rows: list[Any]) -> list[str]:
    if query:
        return [c.strip().strip('"') for c in query.split(",") if c.strip()]
    return list(rows[0]) if rows and isinstance(rows[0], dict) else []


async def _column_types(conn: asyncpg.Connection[Any] | Any, table: str) -> dict[str, str] | None:
    if await conn.fetchval("SELECT to_regclass($1)", f'public."{table}"') is None:
        return None
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        f'public."{table}"',
    )
    return {r["attname"]: r["type"] for r in rows}


async def _function_signature(conn: Any, function: str, names: set[str]) -> dict[str, str] | None:
    rows = await conn.fetch(
        "SELECT p.proargnames AS names, array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) AS types"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proname = $1",
        function,
    )
    for row in rows:
        arg_names = list(row["names"] or [])
        if set(arg_names) == names:
            return dict(zip(arg_names, row["types"], strict=True))
    return None


def _insert_sql(
    table: str, columns: list[str], types: dict[str, str], on_conflict: str | None, prefer: dict[str, str]
) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    record = ", ".join(f'"{c}" {types[c]}' for c in columns)
    sql = f'INSERT INTO public."{table}" ({quoted}) SELECT {quoted} FROM json_to_recordset($1::json) AS _({record})'
    resolution = prefer.get("resolution")
    if resolution and on_conflict:
        target = ", ".join(f'"{c.strip()}"' for c in on_conflict.split(","))
        if resolution == "ignore-duplicates":
            sql += f" ON CONFLICT ({target}) DO NOTHING"
        else:
            updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns)
            sql += f" ON CONFLICT ({target}) DO UPDATE SET {updates}"
    return sql + f' RETURNING to_json("{table}".*)::text AS row'
