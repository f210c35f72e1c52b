"""The device edge's CONNECT codec: what it writes, paho and the brokers read (the device tests show
that end to end); here, round trips, partial reads and malformed packets."""

from __future__ import annotations

import pytest

from command_api import mqtt_connect as mc

FULL = mc.Connect(
    client_id="sensor",
    keepalive=30,
    clean_session=False,
    username="d" * 32,
    password=b"1:ab",
    will_topic="devices/x/status",
    will_message=b"offline",
    will_qos=1,
    will_retain=True,
)


@pytest.mark.parametrize(
    "connect",
    [FULL, mc.Connect("c", 60, True, None, None), FULL.with_identity("id", "devices", "p" * 200)],
)
def test_a_connect_reads_back_as_written(connect: mc.Connect) -> None:
    data = mc.encode(connect) + b"\x30\x00"  # and the start of the next packet
    parsed = mc.parse(data)
    assert parsed is not None
    assert parsed[0] == connect
    assert data[parsed[1] :] == b"\x30\x00"


def test_a_connect_cut_anywhere_is_incomplete_not_malformed() -> None:
    data = mc.encode(FULL)
    for end in range(len(data)):
        assert mc.parse(data[:end]) is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x30\x02\x00\x00", "not a CONNECT"),
        (b"\x10\xff\xff\xff\xff\x01", "longer than four bytes"),
        (b"\x10\x80\x80\x80\x01", "at most"),
        (b"\x10\x06\x00\x04HTTP", "not the MQTT protocol"),
        (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00", "reserved"),
        (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x05", "cut short"),
        (b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02\xff\xfe", "UTF-8"),
    ],
)
def test_a_malformed_connect_says_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(mc.MalformedConnect, match=reason):
        mc.parse(data)


def test_another_protocol_level_is_read_for_its_refusal() -> None:
    body = b"\x00\x04MQTT" + bytes((5, 0x02, 0, 60)) + b"\x00\x00\x00"
    parsed = mc.parse(bytes((0x10, len(body))) + body)
    assert parsed is not None
    assert parsed[0].protocol_level == 5
