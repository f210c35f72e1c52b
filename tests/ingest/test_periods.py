"""The period rules on hand-made timelines, and resuming from stored state at any point."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.period_store import period_row
from ingest.periods import DerivationState, Kind, Period, PeriodEngine, PeriodSettings, Reading, derive
from ingest.rows import dumps

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SETTINGS = PeriodSettings.from_env({})


def at(seconds: float, **values: object) -> Reading:
    return Reading(ts=T0 + timedelta(seconds=seconds), **values)  # type: ignore[arg-type]


def parked(seconds: float, soc: float = 60.0, odometer: float = 1000.0, lat: float = 52.0) -> Reading:
    return at(seconds, soc=soc, latitude=lat, longitude=4.0, speed_kmh=0.0, odometer_km=odometer, running=False)


def moving(
    seconds: float, soc: float, odometer: float | None, speed: float = 50.0, lat: float | None = 52.0
) -> Reading:
    return at(
        seconds,
        soc=soc,
        latitude=lat,
        longitude=4.0 if lat is not None else None,
        speed_kmh=speed,
        odometer_km=odometer,
        running=True,
    )


def charging(seconds: float, soc: float, power: float | None = -11.0) -> Reading:
    return at(seconds, soc=soc, latitude=52.0, longitude=4.0, speed_kmh=0.0, power_kw=power, charging=True)


def periods(engine: PeriodEngine, kind: Kind) -> list[Period]:
    return sorted((p for p in engine.emitted.values() if p.kind is kind), key=lambda p: p.start.ts)


def test_a_drive_starts_where_the_car_stood_and_ends_once_the_stop_lasts() -> None:
    readings = [parked(0), parked(60)]
    readings += [moving(60 + 5 * i, soc=60 - 0.1 * i, odometer=1000 + 0.07 * i) for i in range(1, 61)]
    end_odometer = 1000 + 0.07 * 60
    readings += [parked(365 + 5 * i, soc=54.0, odometer=end_odometer) for i in range(50)]
    engine = derive(SETTINGS, readings)
    [drive] = periods(engine, Kind.DRIVE)
    assert drive.closed
    assert drive.start.ts == T0 + timedelta(seconds=60)  # the last reading before it moved
    assert drive.end.ts == T0 + timedelta(seconds=365)  # the first reading of the stop
    row = period_row("V", drive, 64.0, SETTINGS)
    assert row["distance_km"] == round(end_odometer - 1000, 3)
    assert row["start_soc"] == 60.0
    assert row["end_soc"] == 54.0
    assert row["energy_used_kwh"] == round(6 / 100 * 64, 3)
    assert row["efficiency_wh_per_km"] == round(6 / 100 * 64 * 1000 / (end_odometer - 1000), 1)
    assert row["max_speed_kmh"] == 50.0
    parks = periods(engine, Kind.PARK)
    assert [p.closed for p in parks] == [True, False]  # before the drive, and the one going on


def test_a_short_stop_stays_inside_the_drive() -> None:
    readings = [parked(0)]
    readings += [moving(5 * i, soc=60, odometer=1000 + i) for i in range(1, 20)]
    readings += [parked(100 + 5 * i, odometer=1019) for i in range(12)]  # 55 s at a light
    readings += [moving(160 + 5 * i, soc=59, odometer=1019 + i) for i in range(1, 20)]
    readings += [parked(260 + 10 * i, odometer=1038) for i in range(30)]
    engine = derive(SETTINGS, readings)
    [drive] = periods(engine, Kind.DRIVE)
    assert drive.end.ts == T0 + timedelta(seconds=260)
    assert period_row("V", drive, None, SETTINGS)["distance_km"] == 38


def test_readings_half_an_hour_apart_do_not_stretch_a_drive_across_the_gap() -> None:
    readings = [parked(0), moving(1800, soc=59, odometer=1010), moving(1805, soc=59, odometer=1010.1)]
    readings += [parked(3600, soc=58, odometer=1020), parked(7200, soc=58, odometer=1020)]
    engine = derive(SETTINGS, readings)
    [drive] = periods(engine, Kind.DRIVE)
    # The car was seen moving only at 1800 s: the drive cannot have started at 0 s.
    assert drive.start.ts == T0 + timedelta(seconds=1800)
    # Silent for longer than drive_max_gap: it ends at its last reading, not 30 min later.
    assert drive.end.ts == T0 + timedelta(seconds=1805)


def test_a_drive_without_gps_or_odometer_falls_back_as_far_as_it_can() -> None:
    readings = [parked(0)]
    readings += [
        moving(5 * i, soc=60, odometer=None, lat=None if i % 3 == 0 else 52.0 + i * 0.001) for i in range(1, 30)
    ]
    readings += [parked(150 + 60 * i) for i in range(5)]
    [drive] = periods(derive(SETTINGS, readings), Kind.DRIVE)
    row = period_row("V", drive, None, SETTINGS)
    assert row["start_odometer_km"] == 1000.0
    assert row["end_odometer_km"] == 1000.0
    assert row["energy_used_kwh"] is None  # capacity unknown


def test_soc_jitter_while_parked_opens_nothing_and_drain_is_per_hour() -> None:
    readings = [parked(3600 * h / 4, soc=80 - 0.1 * (h % 2) - 0.05 * h) for h in range(41)]
    engine = derive(SETTINGS, readings)
    assert periods(engine, Kind.DRIVE) == []
    assert periods(engine, Kind.CHARGE) == []
    [park] = periods(engine, Kind.PARK)
    row = period_row("V", park, 64.0, SETTINGS)
    assert row["soc_lost"] == 2.0
    assert row["drain_per_hour"] == 0.2


def test_a_charge_integrates_power_and_knows_dc() -> None:
    readings = [parked(0, soc=20)]
    readings += [charging(60 * i, soc=20 + i, power=-50.0) for i in range(1, 31)]
    readings += [parked(1860, soc=50.5)._replace(power_kw=0.0), parked(3600, soc=50.5)._replace(power_kw=0.0)]
    [charge] = periods(derive(SETTINGS.model_copy(update={"price_per_kwh": 0.3}), readings), Kind.CHARGE)
    row = period_row("V", charge, 64.0, SETTINGS.model_copy(update={"price_per_kwh": 0.3}))
    # 29 minutes at 50 kW, then the last minute falls to 0 on the first reading without charging.
    assert row["energy_added_kwh"] == round(50 * 29 / 60 + 25 / 60, 3)
    assert (row["energy_source"], row["charger_type"], row["peak_power_kw"]) == ("power", "DC", 50.0)
    assert (row["start_soc"], row["end_soc"]) == (21, 50.5)
    assert row["cost"] == round(row["energy_added_kwh"] * 0.3, 2)


def test_a_charge_without_power_uses_the_soc_and_the_capacity() -> None:
    readings = [charging(600 * i, soc=30 + 5 * i, power=None) for i in range(7)] + [parked(4200, soc=62)]
    [charge] = periods(derive(SETTINGS, readings), Kind.CHARGE)
    row = period_row("V", charge, 50.0, SETTINGS)
    assert row["energy_source"] == "soc"
    assert row["energy_added_kwh"] == round(32 / 100 * 50, 3)
    assert row["charger_type"] is None  # the data does not tell


# -- resuming from stored state gives the same periods as one pass -------------------------------

kinds = st.sampled_from(["park", "drive", "charge", "nogps"])


@st.composite
def timelines(draw: st.DrawFn) -> list[Reading]:
    steps = draw(st.lists(st.tuples(kinds, st.sampled_from([5, 5, 5, 30, 300, 1800])), min_size=1, max_size=80))
    readings, t, soc, odometer = [], 0.0, 50.0, 1000.0
    for kind, gap in steps:
        t += gap
        soc += draw(st.sampled_from([-0.1, 0.0, 0.1]))
        if kind == "drive":
            odometer += gap * 0.014
            soc -= 0.2
            readings.append(moving(t, soc=soc, odometer=odometer))
        elif kind == "nogps":
            readings.append(moving(t, soc=soc, odometer=odometer, speed=20, lat=None))
        elif kind == "charge":
            soc += 1
            readings.append(charging(t, soc=soc, power=draw(st.sampled_from([None, -7.4, -50.0]))))
        else:
            readings.append(parked(t, soc=soc, odometer=odometer))
    return readings


def rows(engine: PeriodEngine) -> list[dict[str, object]]:
    return sorted(
        (period_row("V", p, 64.0, SETTINGS) | {"kind": p.kind} for p in engine.emitted.values()),
        key=lambda r: (r["start_ts"], r["kind"]),
    )


@settings(max_examples=300, deadline=None)
@given(timelines(), st.data())
def test_resuming_from_stored_state_anywhere_gives_the_same_periods(
    readings: list[Reading], data: st.DataObject
) -> None:
    whole = derive(SETTINGS, readings)
    cut = data.draw(st.integers(0, len(readings)))
    first = derive(SETTINGS, readings[:cut])
    stored = json.loads(dumps(first.state.to_json()))  # what vehicle_derivation keeps
    second = derive(SETTINGS, readings[cut:], DerivationState.from_json(stored))
    merged = {**first.emitted, **second.emitted}
    for key in second.discarded:
        merged.pop(key, None)
    resumed = PeriodEngine(SETTINGS)
    resumed.emitted = merged
    assert rows(resumed) == rows(whole)
    # Contiguous: each period starts where the one before it ended.
    closed = list(rows(whole))
    for before, after in itertools.pairwise(closed):
        assert after["start_ts"] == before["end_ts"]
