"""Decoding the SAIC API's replies: dacite (what saic-ismart-client-ng calls) against
`gateway.saic.decode`, on the replies the SAIC test server gives for a simulated car.

    .venv/bin/python -m bench.saic_decode [--repeat 2000]

Each figure is the best of five timings of `--repeat` decodes, in µs per reply.
"""

from __future__ import annotations

import argparse
import functools
import timeit
from collections.abc import Callable
from typing import Any

import dacite
from saic_ismart_client_ng.api.vehicle.schema import VehicleStatusResp
from saic_ismart_client_ng.api.vehicle_charging.schema import ChrgMgmtDataResp

from gateway.saic import decode
from gateway.simulator import SimulatedFleet, simulated_vin
from tests.saic_server import charging_data, vehicle_status


def _per_call(call: Callable[[], Any], repeat: int) -> float:
    return min(timeit.repeat(call, number=repeat, repeat=5)) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    car = SimulatedFleet(1, seed=1, command_latency=0).vehicle(simulated_vin(1))
    replies: list[tuple[type, dict[str, Any]]] = [
        (VehicleStatusResp, vehicle_status(car)),
        (ChrgMgmtDataResp, charging_data(car)),
    ]
    print(f"{'reply':<20} {'dacite':>10} {'project':>10} {'ratio':>7}")
    for data_class, data in replies:
        assert decode.from_dict(data_class, data) == dacite.from_dict(data_class, data)
        theirs = _per_call(functools.partial(dacite.from_dict, data_class, data), args.repeat)
        ours = _per_call(functools.partial(decode.from_dict, data_class, data), args.repeat)
        print(f"{data_class.__name__:<20} {theirs:>8.1f}µs {ours:>8.1f}µs {ours / theirs:>6.3f}x")


if __name__ == "__main__":
    main()
