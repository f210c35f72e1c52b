"""The SAIC replies' decoder (gateway/saic/decode.py) against dacite, with the real library."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dacite
import pytest
from saic_ismart_client_ng.api import base
from saic_ismart_client_ng.api.vehicle.schema import VehicleListResp, VehicleStatusResp

from gateway.saic import decode
from gateway.saic.http import saic_api
from gateway.saic.settings import SaicSettings
from gateway.simulator import Phase, SimulatedFleet, simulated_vin
from tests.saic_server import SaicTestServer, vehicle_status


async def test_every_reply_the_gateway_reads_decodes_as_dacite_decodes_it_without_dacite(
    saic_server: SaicTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[tuple[type, Any, Any]] = []
    fallbacks: list[type] = []

    def recording(data_class: type, data: Any, config: dacite.Config | None = None) -> Any:
        result: Any = decode.from_dict(data_class, data, config)
        decoded.append((data_class, data, result))
        return result

    def dacite_itself(data_class: type, data: Any, config: dacite.Config | None = None) -> Any:
        fallbacks.append(data_class)
        return dacites(data_class, data, config)

    dacites = dacite.from_dict

    api = saic_api(SaicSettings.from_env(saic_server.env()))
    assert vars(base)["dacite"] is decode._Dacite, "saic_api installs the decoder in the library"
    monkeypatch.setattr(decode._Dacite, "from_dict", staticmethod(recording))
    monkeypatch.setattr(dacite, "from_dict", dacite_itself)
    try:
        await api.login()
        vin = next(v.vin for v in (await api.vehicle_list()).vinList if v.vin)
        car = saic_server.fleet.vehicle(vin)
        car.phase, car.charger_connected = Phase.PARKED, True  # what the commands below need
        await api.get_vehicle_status(vin)
        await api.get_vehicle_charging_management_data(vin)
        await api.get_vehicle_battery_heating_schedule(vin)
        await api.lock_vehicle(vin)
        await api.control_charging(vin, stop_charging=False)
    finally:
        await api.close()
    monkeypatch.undo()

    assert len(decoded) >= 7
    assert fallbacks == [], "every reply of the test server is plain: none should need dacite"
    for data_class, data, result in decoded:
        assert result == dacite.from_dict(data_class, data), data_class.__name__


def test_a_value_not_of_its_annotated_type_gets_dacites_answer() -> None:
    status = vehicle_status_reply()
    status["basicVehicleStatus"]["mileage"] = "12345"  # annotated int | None
    with pytest.raises(dacite.WrongTypeError) as raised:
        dacite.from_dict(VehicleStatusResp, status)
    with pytest.raises(dacite.WrongTypeError) as ours:
        decode.from_dict(VehicleStatusResp, status)
    assert str(ours.value) == str(raised.value)

    status["basicVehicleStatus"]["mileage"] = True  # a bool is an int to dacite
    assert decode.from_dict(VehicleStatusResp, status) == dacite.from_dict(VehicleStatusResp, status)


def test_a_missing_field_gets_its_default_none_or_dacites_error() -> None:
    status = vehicle_status_reply()
    del status["basicVehicleStatus"]["mileage"]  # optional: None
    del status["statusTime"]
    assert decode.from_dict(VehicleStatusResp, status) == dacite.from_dict(VehicleStatusResp, status)
    assert decode.from_dict(VehicleListResp, {}) == VehicleListResp()  # a default factory: []

    @dataclass
    class Required:
        name: str
        note: str | None  # optional without a default: dacite gives None
        tags: list[str] = field(default_factory=list)

    with pytest.raises(dacite.MissingValueError):
        decode.from_dict(Required, {"tags": ["a"]})
    assert decode.from_dict(Required, {"name": "x"}) == Required("x", None) == dacite.from_dict(Required, {"name": "x"})


def test_an_annotation_it_does_not_know_goes_to_dacite() -> None:
    @dataclass
    class Unusual:
        pairs: dict[str, int]

    assert decode._decoder(Unusual) is None
    assert decode.from_dict(Unusual, {"pairs": {"a": 1}}) == Unusual({"a": 1})

    @dataclass
    class Unresolvable:
        later: Undeclared | None = None  # type: ignore[name-defined]  # noqa: F821

    assert decode._decoder(Unresolvable) is None
    with pytest.raises(dacite.ForwardReferenceError):
        decode.from_dict(Unresolvable, {})


def vehicle_status_reply() -> dict[str, Any]:
    fleet = SimulatedFleet(1, seed=1, command_latency=0)
    return vehicle_status(fleet.vehicle(simulated_vin(1)))
