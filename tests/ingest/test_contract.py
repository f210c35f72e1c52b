"""Random and adversarial telemetry through the real broker and ingest into PostgreSQL: nothing
outside the telemetry contract reaches `vehicles`, `vehicle_state` or `vehicle_telemetry`, and
everything refused is in `dead_letters` with its reason (issue 13)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import asyncpg
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from common import topics
from common.settings import DatabaseSettings, MqttSettings
from common.values import CONTRACT, decode, encode, is_vin
from tests.gateway.test_gateway import ACCOUNT, vin
from tests.helpers import client, wait_until
from tests.ingest.test_ingest import reaches_the_ingest, running_ingest

VINS = st.sampled_from([vin(41), vin(42)]) | st.sampled_from(
    ["..", "A", "DROP TABLE vehicles;--", "\N{AUTOMOBILE}", "lsjtest0000000041", "LSJTEST0000000041 ", "X" * 64]
)
KEYS = (
    st.sampled_from(sorted(CONTRACT))
    | st.sampled_from(["drivetrain/bogusKey", "drivetrain/" + "/".join(["k"] * 150), "location/position/extra"])
    | st.integers(0, 40).map(lambda n: f"climate/futureKey{n}")  # more than MAX_EXTRA_KEYS of them
)
NUMBERS = (
    st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.integers(-(10**30), 10**30).map(str)
    | st.sampled_from(["250", "-50", "1.2e29", "-1.8e308", "999.5", "9" * 4000, "١٠", " 80", "8_0", "0x10"])
)
OBJECTS = st.sampled_from(
    [
        "[" * 20_000,
        '{"latitude": 91, "longitude": 0}',
        '{"a": {"b": {"c": 1}}}',
        json.dumps({f"k{i}": i for i in range(40)}),
        '{"startTime": "' + "9" * 5000 + '"}',
    ]
)
PAYLOADS = (
    NUMBERS
    | OBJECTS
    | st.sampled_from(["True", "False", "true", "", "2026-11-30T08:00:00+00:00", "9999-12-31T00:00:00+00:00"])
    | st.text(max_size=80)
    | st.just("x" * 200_000)
).map(str.encode) | st.binary(max_size=100)


# What the acceptance run stored as valid, sent in every example besides the generated messages.
ACCEPTANCE_RUN = [
    *((vin(41), topics.DRIVETRAIN_SOC, p) for p in (b"250", b"-50", b"1.2e29")),
    (vin(41), topics.LOCATION_LATITUDE, b"-1.8e308"),
    (vin(41), topics.LOCATION_LONGITUDE, b"999.5"),
    *(
        (junk, topics.DRIVETRAIN_SOC, b"50")
        for junk in ("..", "A", "DROP TABLE vehicles;--", "\N{AUTOMOBILE}", "lsjtest0000000041", "X" * 64)
    ),
    (vin(41), "drivetrain/" + "/".join(["k"] * 150), b"1"),
    (vin(41), topics.DRIVETRAIN_SOC_TARGET, b"9" * 4000),
    (vin(41), "drivetrain/bogusKey", b"x" * 1_000_000),
]


async def stored(db: DatabaseSettings) -> tuple[list[asyncpg.Record], ...]:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        return (
            await conn.fetch("SELECT vin FROM vehicles"),
            await conn.fetch("SELECT vin, state FROM vehicle_state"),
            await conn.fetch("SELECT * FROM vehicle_telemetry"),
            await conn.fetch("SELECT count(*) AS n FROM dead_letters"),
        )
    finally:
        await conn.close()


def assert_inside_the_contract(values: dict[str, object]) -> None:
    for key, value in values.items():
        decode(key, encode(value))  # type: ignore[arg-type]  # raises for anything outside the contract


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # a failing run is slow enough without shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large, HealthCheck.too_slow],
)
@given(messages=st.lists(st.tuples(VINS, KEYS, PAYLOADS), min_size=300, max_size=300))
async def test_nothing_outside_the_contract_is_stored(
    private_mqtt: MqttSettings, db_settings: DatabaseSettings, messages: list[tuple[str, str, bytes]]
) -> None:
    async with running_ingest(private_mqtt, db_settings) as ingest:  # the schema is in place from here
        dead_before = (await stored(db_settings))[3][0]["n"]
        async with client(private_mqtt, "gateway") as gw:
            for car, key, payload in [*ACCEPTANCE_RUN, *messages]:
                await gw.publish(f"saic/{ACCOUNT}/vehicles/{car}/{key}", payload, qos=1)
            await gw.publish(f"saic/{ACCOUNT}/vehicles/{vin(41)}/{topics.DRIVETRAIN_SOC}", b"61.5", qos=1)
            # What the ingest subscribes to, less empty payloads (they only clear).
            expected = 1 + sum(
                1
                for car, key, payload in [*ACCEPTANCE_RUN, *messages]
                if payload and reaches_the_ingest(private_mqtt, f"saic/{ACCOUNT}/vehicles/{car}/{key}")
            )
            await wait_until(
                lambda: ingest.cache.accepted + ingest.cache.malformed >= expected,
                timeout=30,
                what="every message counted",
            )
        refused = ingest.cache.malformed
        # Gap alerts watch only vehicles the system knows: never a junk VIN.
        assert all(is_vin(car) for car in ingest.cache.reading_ages(datetime.now(UTC)))
    vehicles, states, history, dead = await stored(db_settings)

    assert all(is_vin(row["vin"]) for row in vehicles), [row["vin"] for row in vehicles]
    assert vin(41) in {row["vin"] for row in states}
    for row in states:
        state = json.loads(row["state"])
        assert_inside_the_contract(state)
        assert sum(1 for key in state if key not in CONTRACT and not key.startswith("info/")) <= 32
    for row in history:
        assert_inside_the_contract(json.loads(row["payload"]))
        for column, low, high in (("soc", 0, 100), ("latitude", -90, 90), ("longitude", -180, 180)):
            value = row[column]
            assert value is None or (math.isfinite(value) and low <= value <= high), (column, value)
    assert refused >= len(ACCEPTANCE_RUN)
    assert dead[0]["n"] - dead_before == refused  # every refused message is set aside with its reason
