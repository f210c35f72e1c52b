"""What the upstream saic-python-mqtt-gateway 0.9.7 retains for one car of each kind, from its source.

Derived by reading upstream's `src/mqtt_topics.py` (the names), `src/status_publisher/**` and
`src/vehicle.py` (what is published when, and as which Python type: `_publish_directly` turns a bool
into `True`/`False`, a datetime into ISO 8601, a dict into JSON) and
`src/integrations/home_assistant/discovery.py` (the entities). To check it again, `fetch`
github:SAIC-iSmart-API/saic-python-mqtt-gateway and read those files at tag 0.9.7.
"""

from __future__ import annotations

import re

FORMATS = {
    "bool": re.compile(r"^(True|False)$"),
    "int": re.compile(r"^-?\d+$"),
    "number": re.compile(r"^-?\d+(\.\d+)?$"),
    "text": re.compile(r"^.+$", re.DOTALL),
    "json": re.compile(r"^[\[{].*[\]}]$", re.DOTALL),
    "datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$"),
}

# Every car: vehicle_info.py, basic_vehicle_status.py, gps_position.py, vehicle_status_resp.py, vehicle.py.
EVERY_CAR = {
    "available": "text",
    "info/brand": "text",
    "info/model": "text",
    "info/year": "text",
    "info/series": "text",
    "info/color": "text",
    "_internal/configuration/raw": "json",
    "_internal/abrp": "text",  # the ABRP answer, or why nothing was sent (handlers/vehicle.py)
    "drivetrain/mileage": "number",
    "drivetrain/running": "bool",
    "drivetrain/auxiliaryBatteryVoltage": "number",
    "drivetrain/hvBatteryActive": "bool",
    "drivetrain/soc": "number",
    "drivetrain/range": "number",
    "climate/interiorTemperature": "int",
    "climate/exteriorTemperature": "int",
    "climate/remoteClimateState": "text",
    "climate/rearWindowDefrosterHeating": "text",
    "climate/heatedSeatsFrontLeftLevel": "int",
    "climate/heatedSeatsFrontRightLevel": "int",
    "climate/remoteTemperature": "int",
    **dict.fromkeys((f"windows/{w}" for w in ("driver", "passenger", "rearLeft", "rearRight", "sunRoof")), "bool"),
    **dict.fromkeys(
        (f"doors/{d}" for d in ("locked", "driver", "passenger", "rearLeft", "rearRight", "bonnet", "boot")), "bool"
    ),
    **dict.fromkeys((f"lights/{lt}" for lt in ("mainBeam", "dippedBeam", "side")), "bool"),
    **dict.fromkeys((f"tyres/{t}Pressure" for t in ("frontLeft", "frontRight", "rearLeft", "rearRight")), "number"),
    "location/latitude": "number",
    "location/longitude": "number",
    "location/elevation": "number",
    "location/heading": "number",
    "location/speed": "number",
    "location/position": "json",
    "refresh/lastVehicleState": "datetime",
    "refresh/lastActivity": "datetime",
    "refresh/mode": "text",
    **dict.fromkeys(
        (f"refresh/period/{p}" for p in ("active", "inActive", "afterShutdown", "inActiveGrace", "charging", "error")),
        "int",
    ),
    **{
        f"info/lastMessage/{m}": "datetime" if m == "messageTime" else "text"
        for m in ("messageId", "messageType", "title", "messageTime", "sender", "content", "status", "vin")
    },
}

# A car with a traction battery (every series but ZP22): chrg_mgmt_data.py, rvs_charge_status.py,
# chrg_mgmt_data_resp.py, and the battery heating schedule read on each poll (handlers/vehicle.py).
CHARGING = {
    "bms/chargeStatus": "text",
    "ccu/onboardChargerPlugStatus": "int",
    "ccu/offboardChargerPlugStatus": "int",
    "obc/current": "number",
    "obc/voltage": "number",
    "obc/powerSinglePhase": "number",
    "obc/powerThreePhase": "number",
    "drivetrain/batteryHeating": "bool",
    "drivetrain/batteryHeatingStopReason": "text",
    "drivetrain/batteryHeatingSchedule": "json",
    "drivetrain/charging": "bool",
    "drivetrain/chargingCableLock": "bool",
    "drivetrain/chargingSchedule": "json",
    "drivetrain/chargingStopReason": "text",
    "drivetrain/chargingType": "int",
    "drivetrain/chargerConnected": "bool",
    "drivetrain/chargeCurrentLimit": "text",
    "drivetrain/current": "number",
    "drivetrain/voltage": "number",
    "drivetrain/power": "number",
    "drivetrain/remainingChargingTime": "int",
    "drivetrain/hybrid_electrical_range": "number",
    "drivetrain/socTarget": "int",
    "drivetrain/soc_kwh": "number",
    "drivetrain/totalBatteryCapacity": "number",
    "drivetrain/lastChargeEndingPower": "number",
    "drivetrain/mileageOfTheDay": "number",
    "drivetrain/mileageSinceLastCharge": "number",
    "drivetrain/powerUsageOfDay": "number",
    "drivetrain/powerUsageSinceLastCharge": "number",
    "drivetrain/charging/lastStart": "int",
    "drivetrain/charging/lastEnd": "int",
    "refresh/lastChargeState": "datetime",
}

# A car with a tank (basic_vehicle_status.py publishes them whenever the status carries them).
TANK = {"drivetrain/fossilFuel/range": "number", "drivetrain/fossilFuel/percentage": "int"}

OPTIONAL = {
    "refresh/lastError": "datetime",  # only once a poll has failed
    "drivetrain/currentJourney": "json",  # only while the status carries a journey
    "info/configuration/": "text",  # one per model option, under its name and its code
}

KINDS = {
    # kind: (brand, model, series, model options, fuel level in % or None without a tank)
    "ev": ("MG", "MG4 ELECTRIC", "EH32 S", {"HeatedSeat": "1", "Sunroof": "0", "Battery": "1"}, None),
    "hybrid": ("MG", "MG HS PHEV", "AS23 P", {"HeatedSeat": "2", "Sunroof": "1", "Battery": "0"}, 55),
    "petrol": ("MG", "MG ZS", "ZP22 A", {"HeatedSeat": "0", "Sunroof": "1", "Battery": "0"}, 40),
}


def expected_topics(kind: str) -> dict[str, str]:
    tree = dict(EVERY_CAR)
    if kind != "petrol":
        tree |= CHARGING
    if kind != "ev":
        tree |= TANK
    return tree


# Discovery: (component, name) of every entity upstream publishes, in its order; the object id is
# `<VIN>_<snake(name)>`. Those that depend on the model are in CONDITIONAL.
DISCOVERY = [
    ("select", "Gateway refresh mode"),
    ("number", "Gateway active refresh period"),
    ("number", "Gateway inactive refresh period"),
    ("number", "Gateway refresh period after car shutdown"),
    ("number", "Gateway grace period after car shutdown"),
    ("sensor", "Gateway charging refresh period"),
    ("sensor", "Gateway error refresh period"),
    ("sensor", "Last car activity"),
    ("sensor", "Last charge state"),
    ("sensor", "Last vehicle state"),
    ("sensor", "Last poll error"),
    ("sensor", "Last car message"),
    ("switch", "Front window defroster heating"),
    ("switch", "Vehicle climate fan only"),
    ("climate", "Vehicle climate"),
    ("device_tracker", "Vehicle position"),
    ("sensor", "Scheduled Charging Start"),
    ("sensor", "Scheduled Charging End"),
    ("sensor", "Scheduled Charging Mode"),
    ("select", "Scheduled Charging Mode"),
    ("text", "Scheduled Charging Start"),
    ("text", "Scheduled Charging End"),
    ("sensor", "Scheduled Battery Heating Start"),
    ("binary_sensor", "Scheduled Battery Heating"),
    ("select", "Scheduled Battery Heating"),
    ("text", "Scheduled Battery Heating Start"),
    ("switch", "Charging"),
    ("switch", "Battery heating"),
    ("switch", "Window driver"),
    ("switch", "Window passenger"),
    ("switch", "Window rear left"),
    ("switch", "Window rear right"),
    ("switch", "Rear window defroster heating"),
    ("switch", "Find my car"),
    ("lock", "Doors Lock"),
    ("lock", "Boot Lock"),
    ("lock", "Charging Cable Lock"),
    ("number", "Target SoC"),
    ("select", "Charge current limit"),
    ("sensor", "SoC"),
    ("sensor", "SoC_kWh"),
    ("sensor", "Total Battery Capacity"),
    ("sensor", "Last Charge SoC kWh"),
    ("sensor", "Energy Usage Since Last Charge"),
    ("sensor", "Energy Usage of the Day"),
    ("sensor", "Remaining charging time"),
    ("sensor", "Charging finished"),
    ("sensor", "Last Charge Start Time"),
    ("sensor", "Last Charge End Time"),
    ("sensor", "Charging Mode"),
    ("sensor", "BMS Charge Status"),
    ("sensor", "Mileage"),
    ("sensor", "Mileage of the day"),
    ("sensor", "Mileage since last charge"),
    ("sensor", "Mileage of journey"),
    ("sensor", "Identifier of journey"),
    ("sensor", "Auxiliary battery voltage"),
    ("sensor", "Range"),
    ("sensor", "Fossil fuel range"),
    ("sensor", "Fossil fuel percentage"),
    ("sensor", "Current"),
    ("sensor", "Voltage"),
    ("sensor", "Power"),
    ("sensor", "OBC Current"),
    ("sensor", "OBC Voltage"),
    ("sensor", "OBC Power Single Phase"),
    ("sensor", "OBC Power Three Phase"),
    ("sensor", "CCU Onboard Plug Status"),
    ("sensor", "CCU Offboard Plug Status"),
    ("sensor", "Interior temperature"),
    ("sensor", "Exterior temperature"),
    ("sensor", "Remote climate state"),
    ("sensor", "Rear window defroster heating"),
    ("sensor", "Heading"),
    ("sensor", "Vehicle speed"),
    ("sensor", "Tyres front left pressure"),
    ("sensor", "Tyres front right pressure"),
    ("sensor", "Tyres rear left pressure"),
    ("sensor", "Tyres rear right pressure"),
    ("binary_sensor", "Charger connected"),
    ("binary_sensor", "HV Battery Active"),
    ("binary_sensor", "Battery Charging"),
    ("sensor", "Battery charging stop reason"),
    ("binary_sensor", "Battery heating"),
    ("sensor", "Battery heating stop reason"),
    ("binary_sensor", "Vehicle Running"),
    ("binary_sensor", "Door driver"),
    ("binary_sensor", "Door passenger"),
    ("binary_sensor", "Door rear left"),
    ("binary_sensor", "Door rear right"),
    ("binary_sensor", "Bonnet"),
    ("binary_sensor", "Boot"),
    ("binary_sensor", "Lights Main Beam"),
    ("binary_sensor", "Lights Dipped Beam"),
    ("binary_sensor", "Lights Side"),
]
SUNROOF = [("switch", "Sun roof"), ("binary_sensor", "Sun roof")]
SEAT_LEVELS = [("select", "Heated Seat Front Left Level"), ("select", "Heated Seat Front Right Level")]
SEAT_SWITCHES = [("switch", "Heated Seat Front Left"), ("switch", "Heated Seat Front Right")]
ALWAYS_REMOVED = [("sensor", "Front window defroster heating")]


def expected_discovery(options: dict[str, str]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(published, removed) as (component, name) for a car with these model options."""
    published, removed = set(DISCOVERY), set(ALWAYS_REMOVED)
    (published if options.get("Sunroof") != "0" else removed).update(SUNROOF)
    seats = options.get("HeatedSeat")
    (published if seats == "1" else removed).update(SEAT_LEVELS)
    (published if seats == "2" else removed).update(SEAT_SWITCHES)
    return published, removed
