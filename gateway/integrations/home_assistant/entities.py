"""The entities: upstream's, in upstream's order and with upstream's names (a dashboard built on the
upstream gateway keeps working), then this project's own."""

from __future__ import annotations

from common import topics
from gateway.integrations.home_assistant.entity import (
    GATEWAY_ONLY,
    POSITIVE,
    EntityDescription,
    binary_sensor,
    lock,
    number,
    schedule_command,
    select,
    sensor,
    state_of,
    switch,
    text,
)
from gateway.refresh import RefreshMode
from gateway.source import VehicleInfo


def _has_sunroof(info: VehicleInfo) -> bool:
    return info.has_sunroof


def _level_seats(info: VehicleInfo) -> bool:
    return info.heated_seats == "levels"


def _on_off_seats(info: VehicleInfo) -> bool:
    return info.heated_seats == "on_off"


def _never(_: VehicleInfo) -> bool:
    return False


def _has_fossil_fuel(info: VehicleInfo) -> bool:
    return not info.is_electric


def _supports_target_soc(info: VehicleInfo) -> bool:
    return info.supports_target_soc


CHARGING_SCHEDULE = topics.DRIVETRAIN_CHARGING_SCHEDULE
HEATING_SCHEDULE = topics.DRIVETRAIN_BATTERY_HEATING_SCHEDULE
_SEAT_LEVEL = (
    "{% set v = value | int %}{% if v == 0 %}OFF{% elif v == 1 %}LOW{% elif v == 2 %}MEDIUM{% else %}HIGH{% endif %}"
)
_SEAT_COMMAND = '{% if value == "OFF" %}0{% elif value == "LOW" %}1{% elif value == "MEDIUM" %}2{% else %}3{% endif %}'

UPSTREAM: tuple[EntityDescription, ...] = (
    # The gateway's own settings: available whenever the gateway is.
    select(
        topics.REFRESH_MODE,
        "Gateway refresh mode",
        [m.value for m in RefreshMode],
        entity_category="config",
        icon="mdi:refresh",
        availability=GATEWAY_ONLY,
    ),
    *(
        number(
            key,
            name,
            low=low,
            high=high,
            step=1,
            unit="s",
            icon="mdi:timer",
            mode="auto",
            entity_category="config",
            availability=GATEWAY_ONLY,
        )
        for key, name, low, high in (
            (topics.REFRESH_PERIOD_ACTIVE, "Gateway active refresh period", 30, 60 * 60),
            (topics.REFRESH_PERIOD_INACTIVE, "Gateway inactive refresh period", 60 * 60, 5 * 24 * 60 * 60),
            (topics.REFRESH_PERIOD_AFTER_SHUTDOWN, "Gateway refresh period after car shutdown", 30, 12 * 60 * 60),
            (topics.REFRESH_PERIOD_INACTIVE_GRACE, "Gateway grace period after car shutdown", 30, 12 * 60 * 60),
        )
    ),
    *(
        sensor(key, name, entity_category="diagnostic", unit="s", icon="mdi:timer", availability=GATEWAY_ONLY)
        for key, name in (
            (topics.REFRESH_PERIOD_CHARGING, "Gateway charging refresh period"),
            (topics.REFRESH_PERIOD_ERROR, "Gateway error refresh period"),
        )
    ),
    *(
        sensor(key, name, device_class="timestamp", entity_category="diagnostic", availability=GATEWAY_ONLY)
        for key, name in (
            (topics.REFRESH_LAST_ACTIVITY, "Last car activity"),
            (topics.REFRESH_LAST_CHARGE_STATE, "Last charge state"),
            (topics.REFRESH_LAST_VEHICLE_STATE, "Last vehicle state"),
            (topics.REFRESH_LAST_ERROR, "Last poll error"),
        )
    ),
    sensor(
        topics.INFO_LAST_MESSAGE_CONTENT,
        "Last car message",
        entity_category="diagnostic",
        enabled=False,
        availability=GATEWAY_ONLY,
    ),
    # Remote climate: two switches and a climate entity.
    switch(
        topics.CLIMATE_REMOTE_CLIMATE_STATE,
        "Front window defroster heating",
        icon="mdi:car-defrost-front",
        value_template='{% if value == "front" %}front{% else %}off{% endif %}',
        payload_on="front",
        payload_off="off",
    ),
    switch(
        topics.CLIMATE_REMOTE_CLIMATE_STATE,
        "Vehicle climate fan only",
        icon="mdi:fan",
        value_template='{% if value == "blowingonly" %}blowingonly{% else %}off{% endif %}',
        payload_on="blowingonly",
        payload_off="off",
    ),
    EntityDescription("climate", "Vehicle climate", topics.CLIMATE_REMOTE_CLIMATE_STATE, {}),  # see _climate_options
    # Heated seats: levels, on/off, or none (then both kinds are removed).
    *(
        select(
            key,
            f"Heated Seat {seat} Level",
            ["OFF", "LOW", "MEDIUM", "HIGH"],
            value_template=_SEAT_LEVEL,
            command_template=_SEAT_COMMAND,
            icon="mdi:car-seat-heater",
            requires=_level_seats,
        )
        for seat, key in (
            ("Front Left", topics.CLIMATE_HEATED_SEAT_LEFT),
            ("Front Right", topics.CLIMATE_HEATED_SEAT_RIGHT),
        )
    ),
    *(
        switch(
            key,
            f"Heated Seat {seat}",
            payload_on="1",
            payload_off="0",
            icon="mdi:car-seat-heater",
            requires=_on_off_seats,
        )
        for seat, key in (
            ("Front Left", topics.CLIMATE_HEATED_SEAT_LEFT),
            ("Front Right", topics.CLIMATE_HEATED_SEAT_RIGHT),
        )
    ),
    EntityDescription("device_tracker", "Vehicle position", topics.LOCATION_POSITION, {}),
    # Scheduled charging: three sensors, and a select and two texts that send the whole schedule.
    sensor(
        CHARGING_SCHEDULE,
        "Scheduled Charging Start",
        value_template='{{ value_json["startTime"] }}',
        icon="mdi:clock-start",
    ),
    sensor(
        CHARGING_SCHEDULE, "Scheduled Charging End", value_template='{{ value_json["endTime"] }}', icon="mdi:clock-end"
    ),
    sensor(
        CHARGING_SCHEDULE,
        "Scheduled Charging Mode",
        value_template='{{ value_json["mode"] }}',
        icon="mdi:clock-outline",
    ),
    select(
        CHARGING_SCHEDULE,
        "Scheduled Charging Mode",
        ["UNTIL_CONFIGURED_TIME", "UNTIL_CONFIGURED_SOC", "DISABLED"],
        value_template='{{ value_json["mode"] }}',
        command_template=schedule_command(
            startTime=state_of("sensor", "Scheduled Charging Start"),
            endTime=state_of("sensor", "Scheduled Charging End"),
            mode="{{ value }}",
        ),
        icon="mdi:clock-outline",
    ),
    text(
        CHARGING_SCHEDULE,
        "Scheduled Charging Start",
        value_template='{{ value_json["startTime"] }}',
        command_template=schedule_command(
            startTime="{{ value }}",
            endTime=state_of("sensor", "Scheduled Charging End"),
            mode=state_of("sensor", "Scheduled Charging Mode"),
        ),
        icon="mdi:clock-start",
    ),
    text(
        CHARGING_SCHEDULE,
        "Scheduled Charging End",
        value_template='{{ value_json["endTime"] }}',
        command_template=schedule_command(
            startTime=state_of("sensor", "Scheduled Charging Start"),
            endTime="{{ value }}",
            mode=state_of("sensor", "Scheduled Charging Mode"),
        ),
        icon="mdi:clock-end",
    ),
    # Scheduled battery heating.
    sensor(
        HEATING_SCHEDULE,
        "Scheduled Battery Heating Start",
        value_template='{{ value_json["startTime"] }}',
        icon="mdi:clock-start",
    ),
    binary_sensor(
        HEATING_SCHEDULE,
        "Scheduled Battery Heating",
        value_template='{{ value_json["mode"] }}',
        icon="mdi:clock-outline",
        payload_on="on",
        payload_off="off",
    ),
    select(
        HEATING_SCHEDULE,
        "Scheduled Battery Heating",
        ["on", "off"],
        value_template='{{ value_json["mode"] }}',
        command_template=schedule_command(
            startTime=state_of("sensor", "Scheduled Battery Heating Start"), mode="{{ value }}"
        ),
        icon="mdi:clock-outline",
    ),
    text(
        HEATING_SCHEDULE,
        "Scheduled Battery Heating Start",
        value_template='{{ value_json["startTime"] }}',
        command_template=schedule_command(
            startTime="{{ value }}", mode=state_of("binary_sensor", "Scheduled Battery Heating")
        ),
        icon="mdi:clock-start",
    ),
    # Switches.
    switch(topics.DRIVETRAIN_CHARGING, "Charging"),
    switch(topics.DRIVETRAIN_BATTERY_HEATING, "Battery heating", icon="mdi:heat-wave"),
    *(
        switch(key, name)
        for key, name in zip(
            topics.WINDOWS[:4],
            ("Window driver", "Window passenger", "Window rear left", "Window rear right"),
            strict=True,
        )
    ),
    switch(topics.WINDOWS_SUN_ROOF, "Sun roof", requires=_has_sunroof),
    binary_sensor(topics.WINDOWS_SUN_ROOF, "Sun roof", requires=_has_sunroof),
    switch(
        topics.CLIMATE_BACK_WINDOW_HEAT,
        "Rear window defroster heating",
        icon="mdi:car-defrost-rear",
        payload_on="on",
        payload_off="off",
    ),
    switch(
        topics.LOCATION_FIND_MY_CAR, "Find my car", icon="mdi:car-search", payload_on="activate", payload_off="stop"
    ),
    # Locks.
    lock(topics.DOORS_LOCKED, "Doors Lock", icon="mdi:car-door-lock"),
    lock(topics.DOORS_BOOT, "Boot Lock", icon="mdi:car-door-lock", state_locked="False", state_unlocked="True"),
    lock(topics.DRIVETRAIN_CHARGING_CABLE_LOCK, "Charging Cable Lock", icon="mdi:lock"),
    number(
        topics.DRIVETRAIN_SOC_TARGET,
        "Target SoC",
        device_class="battery",
        unit="%",
        low=40,
        high=100,
        step=10,
        mode="slider",
        icon="mdi:battery-charging-70",
        enabled=_supports_target_soc,
    ),
    select(
        topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT,
        "Charge current limit",
        ["6A", "8A", "16A", "Max"],
        icon="mdi:current-ac",
    ),
    # Sensors.
    sensor(topics.DRIVETRAIN_SOC, "SoC", device_class="battery", state_class="measurement", unit="%"),
    sensor(
        topics.DRIVETRAIN_SOC_KWH,
        "SoC_kWh",
        device_class="energy_storage",
        state_class="measurement",
        icon="mdi:battery-charging-70",
        unit="kWh",
    ),
    sensor(
        topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY,
        "Total Battery Capacity",
        device_class="energy_storage",
        state_class="measurement",
        icon="mdi:battery-high",
        unit="kWh",
        entity_category="diagnostic",
    ),
    *(
        sensor(
            key,
            name,
            device_class="energy_storage",
            state_class="measurement",
            icon="mdi:battery-charging-70",
            unit="kWh",
            enabled=enabled,
        )
        for key, name, enabled in (
            (topics.DRIVETRAIN_LAST_CHARGE_ENDING_POWER, "Last Charge SoC kWh", True),
            (topics.DRIVETRAIN_POWER_USAGE_SINCE_LAST_CHARGE, "Energy Usage Since Last Charge", False),
            (topics.DRIVETRAIN_POWER_USAGE_OF_DAY, "Energy Usage of the Day", False),
        )
    ),
    sensor(
        topics.DRIVETRAIN_REMAINING_CHARGING_TIME,
        "Remaining charging time",
        device_class="duration",
        state_class="measurement",
        unit="s",
    ),
    sensor(
        topics.DRIVETRAIN_REMAINING_CHARGING_TIME,
        "Charging finished",
        device_class="timestamp",
        value_template="{{ (now() + timedelta(seconds = value | int)).isoformat() }}",
        availability=POSITIVE,
    ),
    sensor(
        topics.DRIVETRAIN_CHARGING_LAST_START,
        "Last Charge Start Time",
        device_class="timestamp",
        value_template="{{ value | int | timestamp_utc }}",
        icon="mdi:clock-start",
        availability=POSITIVE,
    ),
    sensor(
        topics.DRIVETRAIN_CHARGING_LAST_END,
        "Last Charge End Time",
        device_class="timestamp",
        value_template="{{ value | int | timestamp_utc }}",
        icon="mdi:clock-end",
        availability=POSITIVE,
    ),
    sensor(topics.DRIVETRAIN_CHARGING_TYPE, "Charging Mode", entity_category="diagnostic", enabled=False),
    sensor(topics.BMS_CHARGE_STATUS, "BMS Charge Status", entity_category="diagnostic", enabled=False),
    sensor(topics.DRIVETRAIN_MILEAGE, "Mileage", device_class="distance", state_class="total_increasing", unit="km"),
    *(
        sensor(key, name, device_class="distance", state_class="total_increasing", unit="km", enabled=False)
        for key, name in (
            (topics.DRIVETRAIN_MILEAGE_OF_DAY, "Mileage of the day"),
            (topics.DRIVETRAIN_MILEAGE_SINCE_LAST_CHARGE, "Mileage since last charge"),
        )
    ),
    sensor(
        topics.DRIVETRAIN_CURRENT_JOURNEY,
        "Mileage of journey",
        device_class="distance",
        state_class="total_increasing",
        unit="km",
        value_template='{{ value_json["distance"] | int(0) }}',
        enabled=False,
    ),
    sensor(
        topics.DRIVETRAIN_CURRENT_JOURNEY,
        "Identifier of journey",
        value_template='{{ value_json["id"] | int(0) }}',
        enabled=False,
    ),
    sensor(
        topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE,
        "Auxiliary battery voltage",
        device_class="voltage",
        state_class="measurement",
        unit="V",
        icon="mdi:car-battery",
    ),
    sensor(topics.DRIVETRAIN_RANGE, "Range", device_class="distance", unit="km"),
    sensor(
        topics.DRIVETRAIN_FOSSIL_FUEL_RANGE,
        "Fossil fuel range",
        device_class="distance",
        unit="km",
        enabled=_has_fossil_fuel,
    ),
    sensor(
        topics.DRIVETRAIN_FOSSIL_FUEL_PERCENTAGE,
        "Fossil fuel percentage",
        state_class="measurement",
        unit="%",
        icon="mdi:fuel",
        enabled=_has_fossil_fuel,
    ),
    sensor(topics.DRIVETRAIN_CURRENT, "Current", device_class="current", state_class="measurement", unit="A"),
    sensor(topics.DRIVETRAIN_VOLTAGE, "Voltage", device_class="voltage", state_class="measurement", unit="V"),
    sensor(topics.DRIVETRAIN_POWER, "Power", device_class="power", state_class="measurement", unit="kW"),
    *(
        sensor(
            key,
            name,
            device_class=device_class,
            state_class="measurement",
            unit=unit,
            entity_category="diagnostic",
            enabled=False,
        )
        for key, name, device_class, unit in (
            (topics.OBC_CURRENT, "OBC Current", "current", "A"),
            (topics.OBC_VOLTAGE, "OBC Voltage", "voltage", "V"),
            (topics.OBC_POWER_SINGLE_PHASE, "OBC Power Single Phase", "power", "W"),
            (topics.OBC_POWER_THREE_PHASE, "OBC Power Three Phase", "power", "W"),
        )
    ),
    *(
        sensor(key, name, state_class="measurement", entity_category="diagnostic", enabled=False)
        for key, name in (
            (topics.CCU_ONBOARD_PLUG_STATUS, "CCU Onboard Plug Status"),
            (topics.CCU_OFFBOARD_PLUG_STATUS, "CCU Offboard Plug Status"),
        )
    ),
    *(
        sensor(key, name, device_class="temperature", state_class="measurement", unit="°C")
        for key, name in (
            (topics.CLIMATE_INTERIOR_TEMPERATURE, "Interior temperature"),
            (topics.CLIMATE_EXTERIOR_TEMPERATURE, "Exterior temperature"),
        )
    ),
    sensor(topics.CLIMATE_REMOTE_CLIMATE_STATE, "Remote climate state", icon="mdi:car-connected"),
    sensor(topics.CLIMATE_BACK_WINDOW_HEAT, "Rear window defroster heating", icon="mdi:car-defrost-rear"),
    sensor(topics.LOCATION_HEADING, "Heading", icon="mdi:compass", unit="°"),
    sensor(topics.LOCATION_SPEED, "Vehicle speed", device_class="speed", unit="km/h"),
    *(
        sensor(key, f"Tyres {side} pressure", device_class="pressure", unit="bar", icon="mdi:tire")
        for key, side in zip(topics.TYRES, ("front left", "front right", "rear left", "rear right"), strict=True)
    ),
    # Binary sensors.
    binary_sensor(
        topics.DRIVETRAIN_CHARGER_CONNECTED, "Charger connected", device_class="plug", icon="mdi:power-plug-battery"
    ),
    binary_sensor(
        topics.DRIVETRAIN_HV_BATTERY_ACTIVE, "HV Battery Active", device_class="power", icon="mdi:battery-check"
    ),
    binary_sensor(
        topics.DRIVETRAIN_CHARGING, "Battery Charging", device_class="battery_charging", icon="mdi:battery-charging"
    ),
    sensor(
        topics.DRIVETRAIN_CHARGING_STOP_REASON,
        "Battery charging stop reason",
        icon="mdi:battery-charging",
        enabled=False,
    ),
    binary_sensor(topics.DRIVETRAIN_BATTERY_HEATING, "Battery heating", icon="mdi:heat-wave"),
    sensor(
        topics.DRIVETRAIN_BATTERY_HEATING_STOP_REASON,
        "Battery heating stop reason",
        icon="mdi:heat-wave",
        enabled=False,
    ),
    binary_sensor(topics.DRIVETRAIN_RUNNING, "Vehicle Running", device_class="running", icon="mdi:car-side"),
    *(
        binary_sensor(key, name, device_class="door", icon="mdi:car-door")
        for key, name in zip(
            topics.DOORS,
            ("Door driver", "Door passenger", "Door rear left", "Door rear right", "Bonnet", "Boot"),
            strict=True,
        )
    ),
    *(
        binary_sensor(key, name, device_class="light", icon=icon)
        for key, name, icon in zip(
            topics.LIGHTS,
            ("Lights Main Beam", "Lights Dipped Beam", "Lights Side"),
            ("mdi:car-light-high", "mdi:car-light-dimmed", "mdi:car-light-dimmed"),
            strict=True,
        )
    ),
    # Retired by upstream: removed from Home Assistant.
    EntityDescription(
        "sensor", "Front window defroster heating", topics.CLIMATE_FRONT_WINDOW_HEAT, {}, requires=_never
    ),
)
"""Upstream's entities, in upstream's order."""

EXTRAS: tuple[EntityDescription, ...] = (
    sensor(topics.REFRESH_POLLING_PHASE, "Polling phase", entity_category="diagnostic", icon="mdi:sleep"),
    sensor(topics.LOCATION_ELEVATION, "Elevation", device_class="distance", unit="m", icon="mdi:elevation-rise"),
)
"""This project's own entities, beside upstream's."""

RETIRED: tuple[tuple[str, str], ...] = (
    ("binary_sensor", "door_bonnet"),
    ("binary_sensor", "door_rearleft"),
    ("binary_sensor", "door_rearright"),
    ("binary_sensor", "engine_running"),
    ("binary_sensor", "lights_dippedbeam"),
    ("binary_sensor", "lights_mainbeam"),
    ("binary_sensor", "sunroof"),
    ("binary_sensor", "window_driver"),
    ("binary_sensor", "window_passenger"),
    ("binary_sensor", "window_rearleft"),
    ("binary_sensor", "window_rearright"),
    ("climate", "climate"),
    ("device_tracker", "location"),
    ("number", "refresh_period_active"),
    ("number", "refresh_period_aftershutdown"),
    ("number", "refresh_period_inactive"),
    ("number", "refresh_period_inactivegrace"),
    ("select", "heated_seat_left"),
    ("select", "heated_seat_right"),
    ("select", "refresh_mode"),
    ("sensor", "charge_status"),
    ("sensor", "last_error"),
    ("sensor", "speed"),
    ("sensor", "tyre_pressure_frontleft"),
    ("sensor", "tyre_pressure_frontright"),
    ("sensor", "tyre_pressure_rearleft"),
    ("sensor", "tyre_pressure_rearright"),
    ("switch", "climate_remoteclimatestate_fan"),
    ("switch", "climate_remoteclimatestate_front"),
    ("switch", "rear_window_defroster"),
)
"""(component, object id suffix) of entities this project published before it took upstream's names:
removed from Home Assistant so that no duplicate lingers."""

ENTITIES = UPSTREAM + EXTRAS
