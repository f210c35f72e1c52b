"""Firmware and staged OTA rollouts to directly connected devices (migration 0015).

Firmware is kept by reference (URL, SHA-256) with the vendor's ECDSA P-256 signature of the image's
SHA-256, verified on upload against FIRMWARE_SIGNING_PUBLIC_KEY: a device is only ever sent an image
the vendor signed. A rollout targets an organization's devices in cumulative stages (percentages).
One API replica at a time (an advisory lock) drives every rollout, each tick:

- a device that has not answered within ROLLOUT_DEVICE_TIMEOUT counts as failed ("no answer");
- when the share of triggered devices that failed passes the rollout's threshold (2 % unless given)
  the rollout pauses itself and the alert `rollout:<id>` fires;
- once every device triggered so far has answered, the rollout widens to its next stage, and
  completes after the last;
- a stage's devices are triggered on `devices/<id>/ota/trigger` (retained, so a device offline now
  gets it when it connects). An aborted or paused rollout triggers nobody.

Devices report on `ota/status` (downloading, installing, succeeded, failed); the ingest records it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from command_api.errors import ApiError, json_object
from common import topics
from common.alerts import Alerts
from common.database import DATABASE_ERRORS, Connection
from common.mqtt import MqttConnection, MqttNotConnected
from common.settings import SettingsError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

ROLLOUT_LOCK = 0x5A1C_0003
DEFAULT_STAGES = (1, 10, 50, 100)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
URL = re.compile(r"^https?://\S{1,2000}$")
FINAL = ("succeeded", "failed")
FIRMWARE_COLUMNS = "id, version, url, sha256, signature, created_by, created_at"
ROLLOUT_COLUMNS = (
    "id, organization_id, firmware_id, stages, stage, failure_threshold, status, status_reason, created_by,"
    " created_at, updated_at"
)


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """FIRMWARE_SIGNING_PUBLIC_KEY: a PEM public key on P-256 (`\\n` may stand for its line breaks).

    `cryptography` is imported here, not with the module: an API without firmware signing (the local
    stack, most deployments) does not hold it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem.replace("\\n", "\n").encode())
    except ValueError as exc:
        raise SettingsError(f"FIRMWARE_SIGNING_PUBLIC_KEY is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SettingsError("FIRMWARE_SIGNING_PUBLIC_KEY must be an ECDSA P-256 (secp256r1) key")
    return key


def verify_signature(key: ec.EllipticCurvePublicKey, sha256: str, signature: str) -> None:
    """The signature (base64 DER) is the vendor's ECDSA P-256 over the image's SHA-256 digest."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, bytes.fromhex(sha256), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (binascii.Error, ValueError, InvalidSignature):
        raise ApiError(
            400, "invalid_signature", "the signature is not the signing key's ECDSA P-256 signature of this SHA-256"
        ) from None


def read_firmware(body: Any) -> dict[str, str]:
    if not isinstance(body, dict) or set(body) != {"version", "url", "sha256", "signature"}:
        raise ApiError(400, "invalid_firmware", "expected exactly version, url, sha256 and signature")
    version, url, sha256, signature = (body[k] for k in ("version", "url", "sha256", "signature"))
    if not isinstance(version, str) or not 1 <= len(version) <= 64:
        raise ApiError(400, "invalid_firmware", "version must be a text of 1 to 64 characters")
    if not isinstance(url, str) or not URL.match(url):
        raise ApiError(400, "invalid_firmware", "url must be an http(s) URL")
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise ApiError(400, "invalid_firmware", "sha256 must be 64 lower-case hex digits")
    if not isinstance(signature, str) or len(signature) > 200:
        raise ApiError(400, "invalid_firmware", "signature must be base64 DER (ECDSA P-256)")
    return {"version": version, "url": url, "sha256": sha256, "signature": signature}


async def add_firmware(
    conn: Connection, key: ec.EllipticCurvePublicKey, fields: dict[str, str], by: str
) -> dict[str, Any]:
    verify_signature(key, fields["sha256"], fields["signature"])
    try:
        row = await conn.fetchrow(
            f"INSERT INTO firmware (version, url, sha256, signature, created_by) VALUES ($1, $2, $3, $4, $5)"  # noqa: S608
            f" RETURNING {FIRMWARE_COLUMNS}",
            *fields.values(),
            by,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "firmware_exists", f"firmware {fields['version']} is already uploaded") from None
    return dict(row) if row else {}


async def list_firmware(conn: Connection) -> dict[str, Any]:
    rows = await conn.fetch(f"SELECT {FIRMWARE_COLUMNS} FROM firmware ORDER BY id DESC")  # noqa: S608
    return {"firmware": [dict(r) for r in rows]}


# -- rollouts ----------------------------------------------------------------------------------------


def read_rollout(body: Any) -> dict[str, Any]:
    allowed = {"firmware_id", "organization_id", "stages", "failure_threshold"}
    body = json_object(body, allowed, "invalid_rollout", "firmware_id and organization_id")
    firmware, organization = body.get("firmware_id"), body.get("organization_id")
    if not isinstance(firmware, int) or isinstance(firmware, bool) or firmware < 1:
        raise ApiError(400, "invalid_rollout", "firmware_id must be an uploaded firmware's id")
    try:
        organization = uuid.UUID(organization) if isinstance(organization, str) else None
    except ValueError:
        organization = None
    if organization is None:
        raise ApiError(400, "invalid_rollout", "organization_id must be an organization's id (a UUID)")
    stages = body.get("stages", list(DEFAULT_STAGES))
    if (
        not isinstance(stages, list)
        or not 1 <= len(stages) <= 20
        or any(not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= 100 for s in stages)
        or stages != sorted(set(stages))
        or stages[-1] != 100
    ):
        raise ApiError(400, "invalid_rollout", "stages must be rising percentages from 1 to 100, ending at 100")
    threshold = body.get("failure_threshold", 0.02)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise ApiError(400, "invalid_rollout", "failure_threshold must be a share from 0 to 1")
    return {"firmware_id": firmware, "organization_id": organization, "stages": stages, "threshold": float(threshold)}


async def create_rollout(conn: Connection, fields: dict[str, Any], by: str) -> dict[str, Any]:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM firmware WHERE id = $1)", fields["firmware_id"]):
        raise ApiError(404, "not_found", f"no firmware {fields['firmware_id']}")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)", fields["organization_id"]):
        raise ApiError(404, "not_found", f"no organization {fields['organization_id']}")
    rollout_id = await conn.fetchval(
        "INSERT INTO rollouts (organization_id, firmware_id, stages, failure_threshold, created_by)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        fields["organization_id"],
        fields["firmware_id"],
        fields["stages"],
        fields["threshold"],
        by,
    )
    return await get_rollout(conn, rollout_id)


def _rollout_json(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row) | {"organization_id": str(row["organization_id"])}


LIST_ROLLOUTS = f"""
SELECT {ROLLOUT_COLUMNS},
       (SELECT version FROM firmware WHERE id = rollouts.firmware_id) AS firmware_version,
       (SELECT COALESCE(jsonb_object_agg(c.status, c.n), '{{}}') FROM (
            SELECT status, count(*) AS n FROM rollout_devices WHERE rollout_id = rollouts.id GROUP BY status
        ) c)::text AS progress
FROM rollouts ORDER BY id DESC
"""  # noqa: S608 - constants


async def list_rollouts(conn: Connection) -> dict[str, Any]:
    """Every rollout with its devices counted by status."""
    rows = await conn.fetch(LIST_ROLLOUTS)
    return {"rollouts": [_rollout_json(r) | {"progress": json.loads(r["progress"])} for r in rows]}


async def get_rollout(conn: Connection, rollout_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1", rollout_id)  # noqa: S608
    if row is None:
        raise ApiError(404, "not_found", f"no rollout {rollout_id}")
    devices = await conn.fetch(
        "SELECT device_id, stage, status, reason, triggered_at, updated_at FROM rollout_devices"
        " WHERE rollout_id = $1 ORDER BY triggered_at, device_id",
        rollout_id,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM devices WHERE organization_id = $1 AND revoked_at IS NULL", row["organization_id"]
    )
    counts: dict[str, int] = {}
    for device in devices:
        counts[device["status"]] = counts.get(device["status"], 0) + 1
    return _rollout_json(row) | {
        "progress": {"devices": total, "included": len(devices), **counts},
        "devices": [dict(d) for d in devices],
    }


def read_threshold(body: Any) -> float | None:
    """A resume's optional new `failure_threshold` (without one, a rollout past its threshold pauses again)."""
    if body is None:
        return None
    threshold = body.get("failure_threshold") if isinstance(body, dict) and set(body) <= {"failure_threshold"} else -1
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise ApiError(400, "invalid_rollout", "a resume takes only failure_threshold, a share from 0 to 1")
    return float(threshold)


async def set_status(
    conn: Connection, rollout_id: int, status: str, allowed_from: tuple[str, ...], threshold: float | None = None
) -> dict[str, Any]:
    current = await conn.fetchval("SELECT status FROM rollouts WHERE id = $1 FOR UPDATE", rollout_id)
    if current is None:
        raise ApiError(404, "not_found", f"no rollout {rollout_id}")
    if current not in allowed_from:
        raise ApiError(409, "rollout_state", f"rollout {rollout_id} is {current}: it cannot become {status}")
    reason = "aborted by an operator" if status == "aborted" else None
    await conn.execute(
        "UPDATE rollouts SET status = $2, status_reason = $3, updated_at = now(),"
        " failure_threshold = COALESCE($4, failure_threshold) WHERE id = $1",
        rollout_id,
        status,
        reason,
        threshold,
    )
    return await get_rollout(conn, rollout_id)


class RolloutEngine:
    """Drives every active rollout (see the module's description); one replica at a time."""

    def __init__(
        self, pool: asyncpg.Pool, mqtt: MqttConnection, alerts: Alerts, tick: float, device_timeout: float
    ) -> None:
        self.pool, self.mqtt, self.alerts = pool, mqtt, alerts
        self.tick_seconds, self.device_timeout = tick, device_timeout

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except (*DATABASE_ERRORS, MqttNotConnected) as exc:
                log.warning("rollouts wait: %s", exc)  # the transaction rolled back; the next tick retries
            except Exception:
                log.exception("a rollout step failed; retrying at the next tick")
            await asyncio.sleep(self.tick_seconds)

    async def tick(self) -> None:
        pauses: list[tuple[int, str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ROLLOUT_LOCK):
                return  # another replica drives them
            for rollout in await conn.fetch(
                f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE status = 'active' ORDER BY id FOR UPDATE"  # noqa: S608
            ):
                paused = await self._advance(conn, rollout)
                if paused:
                    pauses.append((rollout["id"], paused))
        for rollout_id, reason in pauses:
            await self.alerts.fire(f"rollout:{rollout_id}", f"OTA rollout {rollout_id} paused: {reason}")
        await self._clear_settled_alerts()

    async def _clear_settled_alerts(self) -> None:
        """A paused rollout's alert ends when an operator resumes or aborts it."""
        open_ids = [int(key.split(":", 1)[1]) for key in self.alerts.active if key.startswith("rollout:")]
        if not open_ids:
            return
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, status FROM rollouts WHERE id = ANY($1::bigint[])", open_ids)
        for row in rows:
            if row["status"] != "paused":
                await self.alerts.clear(f"rollout:{row['id']}", f"OTA rollout {row['id']} is {row['status']}")

    async def _advance(self, conn: Connection, rollout: asyncpg.Record) -> str | None:
        """Returns why the rollout paused itself, if it did."""
        rollout_id = rollout["id"]
        await conn.execute(
            "UPDATE rollout_devices SET status = 'failed', reason = 'no answer', updated_at = now()"
            " WHERE rollout_id = $1 AND status NOT IN ('succeeded', 'failed')"
            " AND updated_at < now() - make_interval(secs => $2)",
            rollout_id,
            self.device_timeout,
        )
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM rollout_devices WHERE rollout_id = $1 GROUP BY status", rollout_id
        )
        counts: dict[str, int] = {r["status"]: r["n"] for r in rows}
        triggered, failed = sum(counts.values()), counts.get("failed", 0)
        if triggered and failed / triggered > rollout["failure_threshold"]:
            reason = (
                f"{failed} of {triggered} devices failed ({failed / triggered:.1%}, over"
                f" {rollout['failure_threshold']:.1%})"
            )
            await conn.execute(
                "UPDATE rollouts SET status = 'paused', status_reason = $2, updated_at = now() WHERE id = $1",
                rollout_id,
                reason,
            )
            log.error("rollout %d paused: %s", rollout_id, reason)
            return reason
        answered = counts.get("succeeded", 0) + failed
        total = await conn.fetchval(
            "SELECT count(*) FROM devices WHERE organization_id = $1 AND revoked_at IS NULL", rollout["organization_id"]
        )
        stages, stage = rollout["stages"], rollout["stage"]
        target = math.ceil(stages[stage] / 100 * total)
        if triggered >= target:
            if answered < triggered:
                return None  # the stage is still answering
            if stage == len(stages) - 1:
                await conn.execute(
                    "UPDATE rollouts SET status = 'completed', updated_at = now() WHERE id = $1", rollout_id
                )
                log.info("rollout %d completed: %d devices", rollout_id, triggered)
                return None
            stage += 1
            target = math.ceil(stages[stage] / 100 * total)
            await conn.execute("UPDATE rollouts SET stage = $2, updated_at = now() WHERE id = $1", rollout_id, stage)
            log.info("rollout %d widens to stage %d (%d%%)", rollout_id, stage, stages[stage])
        await self._trigger(conn, rollout, stage, target - triggered)
        return None

    async def _trigger(self, conn: Connection, rollout: asyncpg.Record, stage: int, count: int) -> None:
        if count <= 0:
            return
        firmware = await conn.fetchrow(
            "SELECT version, url, sha256, signature FROM firmware WHERE id = $1", rollout["firmware_id"]
        )
        chosen = await conn.fetch(
            "INSERT INTO rollout_devices (rollout_id, device_id, stage)"
            " SELECT $1, d.device_id, $3 FROM devices d"
            " WHERE d.organization_id = $2 AND d.revoked_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM rollout_devices r WHERE r.rollout_id = $1 AND r.device_id = d.device_id)"
            " ORDER BY md5(d.device_id || $1::text) LIMIT $4 RETURNING device_id",
            rollout["id"],
            rollout["organization_id"],
            stage,
            count,
        )
        message = json.dumps({"rollout_id": rollout["id"], **dict(firmware or {})})
        for row in chosen:
            # In the transaction: a broker that does not take a trigger leaves the device untriggered.
            topic = topics.device_topic(row["device_id"], topics.DEVICE_OTA_TRIGGER)
            await self.mqtt.publish(topic, message, qos=1, retain=True)
