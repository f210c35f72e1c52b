"""A test server that speaks the SAIC iSMART wire protocol, backed by the simulated fleet.

Requests are decrypted and their signatures checked with the library's own `net.crypto` helpers;
replies are encrypted the same way, so the real `saic-ismart-client-ng` runs its real code paths.
It models what the gateway must survive: one token per account (a new login logs the old one out),
the event-id polling dance while a car "wakes", and faults on demand (logout, error codes,
HTTP 5xx, slow answers and timeouts). The benchmarks use it too, with a fixed latency per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from saic_ismart_client_ng.api.vehicle_charging.schema import (
    ChargeCurrentLimitCode,
    ScheduledChargingMode,
    TargetBatteryCode,
)
from saic_ismart_client_ng.crypto_utils import sha1_hex_digest, sha256_hex_digest
from saic_ismart_client_ng.net.crypto import decrypt_request, encrypt_response, get_app_verification_string

from gateway.simulator import Phase, SimulatedControl, SimulatedFleet, SimulatedVehicle
from gateway.source import CommandFailed, VehicleInfo

API_PATH = "/api.app/v1/"
TENANT_ID = "459771"
CLIMATE_CODES = {"off": 0, "blowingonly": 1, "on": 2, "front": 5}
REFUSED = 8  # what the API answers when the car refuses a remote command


@dataclass
class Fault:
    """Make the next `times` requests whose path starts with `path` misbehave."""

    kind: str  # logout | code | http | slow
    path: str = "/"
    times: int = 1
    code: int = 0
    message: str = "The remote control instruction failed, please try again later."
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any] | None
    event_id: str | None
    client_port: int  # one per connection: how many the client opened
    at: float = field(default_factory=time.monotonic)


@dataclass
class TestAccount:
    """Another account on the same server: its own password, cars and single live token."""

    username: str
    password: str
    fleet: SimulatedFleet
    token: str | None = None
    logins: int = 0


@dataclass
class SaicTestServer:
    fleet: SimulatedFleet
    username: str = "owner@example.com"
    password: str = "correct horse"
    latency: float = 0.0
    event_id_rounds: int = 0
    """How many times a car answers "still waking" (event id, no data) before it answers."""
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    signature_failures: int = 0
    logins: int = 0
    _token: str | None = None
    accounts: dict[str, TestAccount] = field(default_factory=dict)
    """Accounts beyond the first (`username`, `password`, `fleet`), by username."""
    _fleet_by_hash: dict[str, SimulatedFleet] = field(default_factory=dict)
    _pending: dict[str, int] = field(default_factory=dict)
    _event_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _runner: web.AppRunner | None = None
    _vins_by_hash: dict[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The account's alarm messages, as `GET /message/list` serves them (newest first)."""
    tanks: dict[str, int] = field(default_factory=dict)
    """Fuel level in % by VIN, for a car with a tank (a petrol car or a hybrid)."""
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(9000))
    contacts: dict[str, int] = field(default_factory=dict)
    """When SAIC last heard from each car (epoch s): its answer to a status call, or now while it
    drives or charges. `/vehicle/status/cache` reports it without waking the car."""

    @property
    def base_uri(self) -> str:
        return f"http://{self.host}:{self.port}{API_PATH}"

    def env(self) -> dict[str, str]:
        """The gateway settings that point it at this server."""
        return {
            "SAIC_USERNAME": self.username,
            "SAIC_PWD": self.password,
            "SAIC_BASE_URI": self.base_uri,
            "SAIC_SMS_DELIVERY_DELAY": "0.05",
            "SAIC_READ_TIMEOUT": "2",
            "SAIC_RATE_LIMIT": "0",
        }

    async def start(self) -> None:
        await self._register(self.fleet)
        app = web.Application()
        app.router.add_route("*", API_PATH + "{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _register(self, fleet: SimulatedFleet) -> None:
        for info in await fleet.vehicles():
            self._vins_by_hash[sha256_hex_digest(info.vin)] = info.vin
            self._fleet_by_hash[sha256_hex_digest(info.vin)] = fleet

    async def add_account(self, username: str, password: str, fleet: SimulatedFleet) -> TestAccount:
        """A second (third, ...) account, with cars whose VINs differ from the others'
        (SimulatedFleet's `first`)."""
        account = TestAccount(username, password, fleet)
        self.accounts[username] = account
        await self._register(fleet)
        return account

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def log_everyone_out(self) -> None:
        """What happens when the owner logs in with the official app."""
        self._token = None

    def add_message(
        self, vin: str, *, message_type: str = "323", title: str = "Vehicle start", at: float | None = None
    ) -> dict[str, Any]:
        """A message in the account's list; SAIC dates it in local wall-clock time, without a zone."""
        message = {
            "messageId": next(self._message_ids),
            "messageType": message_type,
            "title": title,
            "content": f"Your vehicle {vin[-6:]} was started.",
            "sender": "iSMART",
            "messageTime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)),
            "readStatus": 0,
            "vin": vin,
        }
        self.messages.insert(0, message)
        return message

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path.split("?")[0] for r in self.requests if method is None or r.method == method]

    def controls(self) -> list[dict[str, Any]]:
        return [
            r.body
            for r in self.requests
            if r.path.startswith(("/vehicle/control", "/vehicle/charging/", "/charging/"))
            and r.method == "POST"
            and r.body
        ]

    # -- transport ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.raw_path.removeprefix(API_PATH)
        url = self.base_uri + path.removeprefix("/")
        encrypted = await request.text()
        headers = request.headers
        plaintext = decrypt_request(
            original_request_url=url,
            original_request_headers=headers,  # type: ignore[arg-type]
            original_request_content=encrypted,
            base_uri=self.base_uri,
        ).decode()
        expected = get_app_verification_string(
            request_path=path,
            current_ts=headers.get("APP-SEND-DATE", ""),
            tenant_id=headers.get("tenant-id", ""),
            content_type=headers.get("ORIGINAL-CONTENT-TYPE", ""),
            request_content=plaintext.strip(),
            user_token=headers.get("blade-auth", ""),
        )
        if headers.get("APP-VERIFICATION-STRING") != expected:
            self.signature_failures += 1
            return self._reply(url, {"code": 1, "message": "signature verification failed"})
        body = self._parse_body(plaintext, headers.get("ORIGINAL-CONTENT-TYPE", ""))
        event_id = headers.get("event-id")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(Recorded(request.method, path, body, event_id, peer[1] if peer else 0))
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(path)
        if fault is not None:
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "logout":
                self._token = None
                return self._reply(url, {"code": 401, "message": "Token expired"})
            elif fault.kind == "code":
                return self._reply(url, {"code": fault.code, "message": fault.message})
            elif fault.kind == "http":
                return web.Response(status=fault.code or 502, text="<html>Bad Gateway</html>")
        if path.startswith("/oauth/token"):
            return self._reply(url, self._login(body or {}))
        fleet = self._fleet_of(headers.get("blade-auth"))
        if fleet is None:
            return self._reply(url, {"code": 401, "message": "Token expired"})
        waiting = self._event_id_dance(event_id)
        if waiting is not None:
            return self._reply(url, {"code": 0, "message": "success"}, {"event-id": waiting})
        try:
            data = await self._route(request.method, path, body or {}, parse_qs(path.partition("?")[2]), fleet)
        except CommandFailed as exc:
            return self._reply(url, {"code": REFUSED, "message": str(exc)})
        except KeyError as exc:
            return self._reply(url, {"code": 2, "message": f"unknown vehicle or field {exc}"})
        reply: dict[str, Any] = {"code": 0, "message": "success"}
        if data is not None:
            reply["data"] = data
        return self._reply(url, reply)

    def _reply(self, url: str, payload: dict[str, Any], extra: dict[str, str] | None = None) -> web.Response:
        content, headers = encrypt_response(
            original_request_url=url,
            original_response_headers={"Content-Type": "application/json"},
            original_response_content=json.dumps(payload),
            response_timestamp_ms=int(time.time() * 1000),
            base_uri=self.base_uri,
            tenant_id=TENANT_ID,
        )
        body = content if isinstance(content, bytes) else content.encode()
        return web.Response(body=body, headers={**headers, **(extra or {})})

    @staticmethod
    def _parse_body(plaintext: str, content_type: str) -> dict[str, Any] | None:
        if not plaintext.strip():
            return None
        if "x-www-form-urlencoded" in content_type:
            return {k: v[0] for k, v in parse_qs(plaintext).items()}
        parsed = json.loads(plaintext)
        return parsed if isinstance(parsed, dict) else {"value": parsed}

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def _event_id_dance(self, event_id: str | None) -> str | None:
        """The new event id to answer with while the car is "waking"; None once it answers."""
        if event_id is None or self.event_id_rounds == 0:
            return None
        if event_id == "0":
            new_id = str(next(self._event_ids))
            self._pending[new_id] = self.event_id_rounds - 1
            return new_id
        remaining = self._pending.get(event_id, 0)
        if remaining > 0:
            self._pending[event_id] = remaining - 1
            return event_id
        return None

    # -- the API ------------------------------------------------------------------------------

    def _fleet_of(self, token: str | None) -> SimulatedFleet | None:
        """The cars of the account whose live token this is; None for no live token."""
        if token is None:
            return None
        if token == self._token:
            return self.fleet
        return next((a.fleet for a in self.accounts.values() if a.token == token), None)

    def _login(self, form: dict[str, Any]) -> dict[str, Any]:
        if (other := self.accounts.get(str(form.get("username")))) is not None:
            if form.get("password") != sha1_hex_digest(other.password):
                return {"code": 15019, "message": "Incorrect password"}
            other.logins += 1
            other.token = uuid.uuid4().hex
            token_type = {"access_token": other.token, "expires_in": 120 * 86400, "token_type": "bearer"}
            return {"code": 0, "message": "success", "data": {**token_type, "account": other.username}}
        if form.get("username") != self.username or form.get("password") != sha1_hex_digest(self.password):
            return {"code": 15019, "message": "Incorrect password"}
        self.logins += 1
        self._token = uuid.uuid4().hex  # one live token per account: any older one stops working
        return {
            "code": 0,
            "message": "success",
            "data": {
                "access_token": self._token,
                "expires_in": 120 * 86400,
                "token_type": "bearer",
                "account": self.username,
            },
        }

    def _vehicle(self, vin_hash: str) -> SimulatedVehicle:
        return self._fleet_by_hash[vin_hash].vehicle(self._vins_by_hash[vin_hash])

    async def _route(
        self, method: str, path: str, body: dict[str, Any], query: dict[str, list[str]], fleet: SimulatedFleet
    ) -> Any:
        endpoint = path.split("?", maxsplit=1)[0]
        vin_hash = query.get("vin", [body.get("vin", "")])[0]
        if vin_hash and self._fleet_by_hash.get(vin_hash, fleet) is not fleet:
            raise KeyError("vin")  # another account's car
        match method, endpoint:
            case "GET", "/vehicle/list":
                return {"vinList": [_vin_info(info) for info in await fleet.vehicles()]}
            case "GET", "/vehicle/status/cache":
                vin, vehicle = self._vins_by_hash[vin_hash], self._vehicle(vin_hash)
                if vehicle.phase is not Phase.PARKED:
                    self.contacts[vin] = int(time.time())
                locked = {"lockStatus": int(vehicle.locked)}
                return {"statusTime": self.contacts.get(vin), "basicVehicleStatus": locked, "onlineStatus": 1}
            case "GET", "/vehicle/status":
                self.contacts[self._vins_by_hash[vin_hash]] = int(time.time())
                status = vehicle_status(self._vehicle(vin_hash))
                if (tank := self.tanks.get(self._vins_by_hash[vin_hash])) is not None:
                    status["basicVehicleStatus"] |= {"fuelLevelPrc": tank, "fuelRange": tank * 70}
                return status
            case "GET", "/charging/batteryHeating":
                heating = self._vehicle(vin_hash).battery_heating_start
                if heating is None:
                    return {"startTime": 0, "status": 0}
                today = time.localtime()[:3]
                starts_at = time.mktime((*today, int(heating[:2]), int(heating[3:]), 0, 0, 0, -1))
                return {"startTime": int(starts_at) * 1000, "status": 1}
            case "GET", "/message/list":
                size, page = int(query["pageSize"][0]), int(query["pageNum"][0])
                return {"messages": self.messages[(page - 1) * size : page * size], "totalNumber": len(self.messages)}
            case "PUT", "/vehicle/alarmSwitch":
                return None  # the upstream gateway registers for alarm messages at its start
            case "PUT", "/message/status":
                found = next(m for m in self.messages if m["messageId"] == body["messageId"])
                if body["actionType"] == "READ":
                    found["readStatus"] = 1
                elif body["actionType"] == "DELETE":
                    self.messages.remove(found)
                return None
            case "GET", "/vehicle/charging/mgmtData":
                return charging_data(self._vehicle(vin_hash))
            case "POST", "/vehicle/control":
                await self._control(self._vehicle(vin_hash), body)
                return {"rvcReqType": body["rvcReqType"], "rvcReqSts": "AQ==", "failureType": 0}
            case "POST", "/vehicle/charging/control":
                await self._charging_control(self._vehicle(vin_hash), body)
                return {"rvcReqSts": "AQ=="}
            case "POST", "/vehicle/charging/setting":
                vehicle = self._vehicle(vin_hash)
                if body.get("onBdChrgTrgtSOCReq"):
                    await _control(vehicle).set_target_soc(TargetBatteryCode(body["onBdChrgTrgtSOCReq"]).percentage)
                if body.get("altngChrgCrntReq"):
                    limit = ChargeCurrentLimitCode(body["altngChrgCrntReq"]).limit.upper()
                    await _control(vehicle).set_charge_current_limit(limit)  # type: ignore[arg-type]
                return {"rvcReqSts": "AQ=="}
            case "POST", "/vehicle/charging/reservation":
                mode = ScheduledChargingMode(body["tboxReserCtrlReq"]).name.lower()
                start = clock_time(body["rsvanStHour"], body["rsvanStMintue"])
                end = clock_time(body["rsvanSpHour"], body["rsvanSpMintue"])
                await _control(self._vehicle(vin_hash)).set_charging_schedule(mode, start, end)  # type: ignore[arg-type]
                return {"rvcReqSts": "AQ=="}
            case "POST", "/vehicle/charging/ptcHeat":
                await _control(self._vehicle(vin_hash)).set_battery_heating(body["ptcHeatReq"] == 1)
                return {"ptcHeatResp": 0, "rvcReqSts": "AQ=="}
            case "POST", "/charging/batteryHeating":
                local = time.localtime(body["startTime"] / 1000) if body.get("status") else None
                at = clock_time(local.tm_hour, local.tm_min) if local else None
                await _control(self._vehicle(vin_hash)).set_battery_heating_schedule(at)
                return None
        raise KeyError(f"{method} {endpoint}")

    async def _control(self, vehicle: SimulatedVehicle, body: dict[str, Any]) -> None:
        control = _control(vehicle)
        params = {p["paramId"]: base64.b64decode(p["paramValue"]) for p in body.get("rvcParams") or []}
        match body["rvcReqType"]:
            case "1":
                await control.lock()
            case "2":
                if params.get(7) == b"\x03":
                    await control.unlock()
                else:
                    await control.open_tailgate()
            case "0":
                if params.get(1) == b"\x00":
                    await control.find_my_car("stop")
                else:
                    await control.find_my_car("activate" if params.get(2) == b"\x01" else "lights_only")
            case "6":
                fan, temperature = params[19][0], params.get(20, b"\x00")[0]
                if fan == 0:
                    await control.stop_climate()
                elif fan == 1:
                    await control.start_climate("blowingonly", None)
                elif fan == 5:
                    await control.start_climate("front", None)
                else:
                    await control.start_climate("on", temperature - 2 + 16)
            case "5":
                await control.set_heated_seats(params[17][0], params[18][0])
            case "32":
                await control.set_rear_window_heat(params[23] == b"\x01")
            case other:
                raise KeyError(f"rvcReqType {other}")

    async def _charging_control(self, vehicle: SimulatedVehicle, body: dict[str, Any]) -> None:
        control = _control(vehicle)
        if body.get("chrgCtrlReq") == 1:
            await control.start_charging()
        elif body.get("chrgCtrlReq") == 2:
            await control.stop_charging()
        if body.get("tboxEleccLckCtrlReq"):
            await control.set_charging_cable_lock(body["tboxEleccLckCtrlReq"] == 1)


def _control(vehicle: SimulatedVehicle) -> SimulatedControl:
    return SimulatedControl(vehicle, latency=0)


def _vin_info(info: VehicleInfo) -> dict[str, Any]:
    return {
        "vin": info.vin,
        "brandName": info.brand,
        "modelName": info.model,
        "modelYear": str(info.year),
        "series": info.series,
        "colorName": info.color,
        "vehicleModelConfiguration": [
            {"itemCode": code, "itemName": code, "itemValue": value} for code, value in info.configuration.items()
        ],
    }


def vehicle_status(v: SimulatedVehicle) -> dict[str, Any]:
    """The simulated car as `GET /vehicle/status` reports it, raw units and codes."""
    v.advance()
    r = v.readings()
    driving = v.phase is Phase.DRIVING
    now = int(time.time())
    return {
        "statusTime": now,
        "basicVehicleStatus": {
            "mileage": round(v.mileage_km * 10),
            "engineStatus": 1 if driving else 0,
            "handBrake": 0 if driving else 1,
            "batteryVoltage": round(float(r["drivetrain/auxiliaryBatteryVoltage"]) * 10),  # type: ignore[arg-type]
            "interiorTemperature": round(v.interior_c),
            "exteriorTemperature": round(v.exterior_c),
            "lockStatus": 1 if v.locked else 0,
            **dict.fromkeys(("driverDoor", "passengerDoor", "rearLeftDoor", "rearRightDoor", "bonnetStatus"), 0),
            "bootStatus": int(v.boot_open),
            **dict.fromkeys(
                ("driverWindow", "passengerWindow", "rearLeftWindow", "rearRightWindow", "sunroofStatus"), 0
            ),
            "frontLeftTyrePressure": 66,
            "frontRightTyrePressure": 65,
            "rearLeftTyrePressure": 65,
            "rearRightTyrePressure": 65,
            "mainBeamStatus": int(bool(r["lights/mainBeam"])),
            "dippedBeamStatus": int(bool(r["lights/dippedBeam"])),
            "sideLightStatus": int(bool(r["lights/side"])),
            "remoteClimateStatus": CLIMATE_CODES[v.climate_mode],
            "rmtHtdRrWndSt": int(v.rear_window_heat),
            "frontLeftSeatHeatLevel": v.heated_seats[0],
            "frontRightSeatHeatLevel": v.heated_seats[1],
            "extendedData1": round(v.soc),
            "fuelRangeElec": round(float(r["drivetrain/range"]) * 10),  # type: ignore[arg-type]
            "powerMode": 2 if driving else 0,
        },
        "gpsPosition": {
            "gpsStatus": 3,
            "timeStamp": now,
            "wayPoint": {
                "position": {
                    "latitude": round(float(r["location/latitude"]) * 1e6),  # type: ignore[arg-type]
                    "longitude": round(float(r["location/longitude"]) * 1e6),  # type: ignore[arg-type]
                    "altitude": r["location/elevation"],
                },
                "heading": r["location/heading"],
                "speed": round(v.speed_kmh * 10),
                "hdop": 8,
                "satellites": 9,
            },
        },
    }


def charging_data(v: SimulatedVehicle) -> dict[str, Any]:
    """The simulated car as `GET /vehicle/charging/mgmtData` reports it."""
    v.advance()
    r = v.readings()
    charging = v.phase is Phase.CHARGING
    start, end, mode = v.charging_schedule
    return {
        "chrgMgmtData": {
            "bmsPackCrnt": round((float(r["drivetrain/current"]) + 1000) / 0.05),  # type: ignore[arg-type]
            "bmsPackCrntV": 0,
            "bmsPackVol": round(float(r["drivetrain/voltage"]) / 0.25),  # type: ignore[arg-type]
            "bmsPackSOCDsp": round(v.soc * 10),
            "bmsChrgSts": 1 if charging else (7 if v.charger_connected else 0),
            "bmsOnBdChrgTrgtSOCDspCmd": TargetBatteryCode.from_percentage(v.soc_target).value,
            "bmsAltngChrgCrntDspCmd": ChargeCurrentLimitCode.to_code(v.charge_current_limit).value,
            "chrgngRmnngTime": int(r["drivetrain/remainingChargingTime"]) // 60,  # type: ignore[arg-type]
            "chrgngRmnngTimeV": 0,
            "bmsPTCHeatReqDspCmd": int(v.battery_heating),
            "ccuEleccLckCtrlDspCmd": 1 if v.cable_locked else 2,
            "bmsReserCtrlDspCmd": ScheduledChargingMode[mode].value,
            "bmsReserStHourDspCmd": int(start[:2]),
            "bmsReserStMintueDspCmd": int(start[3:]),
            "bmsReserSpHourDspCmd": int(end[:2]),
            "bmsReserSpMintueDspCmd": int(end[3:]),
            # The on-board charger's AC input in the API's units (volts / 2, amps x 5): 230 V, 16 A.
            "onBdChrgrAltrCrntInptVol": 115 if charging else 0,
            "onBdChrgrAltrCrntInptCrnt": 80 if charging else 0,
            "bmsEstdElecRng": round(float(r["drivetrain/range"])),  # type: ignore[arg-type]
            "bmsChrgSpRsn": 0,
            "bmsPTCHeatResp": 0,
            "ccuOnbdChrgrPlugOn": int(v.charger_connected),
            "ccuOffBdChrgrPlugOn": 0,
        },
        "rvsChargeStatus": {
            "chargingGunState": int(v.charger_connected),
            "chargingType": 1 if charging else 0,
            "totalBatteryCapacity": round(v.capacity_kwh * 10),
            "fuelRangeElec": round(float(r["drivetrain/range"]) * 10),  # type: ignore[arg-type]
            # Tenths of a km and of a kWh, and epoch seconds, as the API sends them.
            "mileageOfDay": 256,
            "mileageSinceLastCharge": 1_000,
            "startTime": int(time.time()) - 3_600,
            "endTime": int(time.time()) - 600,
            "realtimePower": round(v.soc / 100 * v.capacity_kwh * 10),
            "lastChargeEndingPower": round(0.9 * v.capacity_kwh * 10),
            "powerUsageOfDay": 42,
            "powerUsageSinceLastCharge": 150,
        },
    }


SECOND_ACCOUNT = ("second@example.com", "second secret")
"""The second account of `two_accounts`: its cars are LSJTEST0000000011 and on."""


@contextlib.asynccontextmanager
async def two_accounts(cars: int = 2) -> AsyncIterator[SaicTestServer]:
    """The server with two accounts, `cars` cars each (LSJTEST0000000001..., LSJTEST0000000011...)."""
    server = SaicTestServer(SimulatedFleet(cars, seed=1, command_latency=0))
    await server.add_account(*SECOND_ACCOUNT, SimulatedFleet(cars, seed=2, command_latency=0, first=10))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def serve(port: int, vehicles: int, latency: float) -> SaicTestServer:
    """Serve until SIGTERM; the server's request log is then read by the caller."""
    server = SaicTestServer(SimulatedFleet(vehicles, seed=1, command_latency=0), latency=latency, port=port)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the SAIC wire-protocol test server, stand-alone (for benchmarks)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--vehicles", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--log", type=Path, required=True, help="where to write each status request's car and time")
    args = parser.parse_args()
    served = asyncio.run(serve(args.port, args.vehicles, args.latency))
    polls = [(r.path.split("vin=")[1][:64], r.at) for r in served.requests if r.path.split("?")[0] == "/vehicle/status"]
    requests = [r.at for r in served.requests]  # every call, event-id repeats included
    connections = len({r.client_port for r in served.requests})
    args.log.write_text(
        json.dumps(
            {
                "polls": polls,
                "requests": requests,
                "connections": connections,
                "signature_failures": served.signature_failures,
            }
        )
    )
