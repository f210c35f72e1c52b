"""What the telemetry contract costs the ingest per message: `common.values.decode` (parse, then
check type, range, size) against a bare parse of the same payloads (no checks), in the same run.

    python -m bench.contract [--rounds 20000]
"""

from __future__ import annotations

import argparse
import json
import timeit
from datetime import datetime

from common import topics
from common.values import decode

# One reading as the gateway publishes it: the keys that every poll carries.
READING = [
    (topics.REFRESH_LAST_VEHICLE_STATE, b"2026-11-30T08:00:00+00:00"),
    (topics.DRIVETRAIN_SOC, b"55.5"),
    (topics.LOCATION_LATITUDE, b"52.123456"),
    (topics.LOCATION_LONGITUDE, b"4.123456"),
    (topics.DOORS_LOCKED, b"True"),
    (topics.CLIMATE_INTERIOR_TEMPERATURE, b"21"),
    (topics.LOCATION_POSITION, b'{\n  "latitude": 52.1,\n  "longitude": 4.3,\n  "altitude": 2\n}'),
]


def bare(key: str, payload: bytes) -> object:
    text = payload.decode()
    if key == topics.REFRESH_LAST_VEHICLE_STATE:
        return datetime.fromisoformat(text)
    if text in ("True", "False"):
        return text == "True"
    if text.startswith("{"):
        return json.loads(text)
    return float(text)


def per_message(parse: object, rounds: int) -> float:
    assert callable(parse)
    seconds = min(timeit.repeat(lambda: [parse(k, p) for k, p in READING], number=rounds, repeat=5))
    return seconds / (rounds * len(READING)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    baseline = per_message(bare, args.rounds)
    checked = per_message(decode, args.rounds)
    print(f"bare parse:           {baseline:.2f} us/message")
    print(f"contract (decode):    {checked:.2f} us/message = {checked / baseline:.2f}x the bare parse")
    print(f"at 33,000 msg/s the contract costs {checked * 33_000 / 1e4:.1f}% of one core")


if __name__ == "__main__":
    main()
