"""MQTT 3.1.1 CONNECT and CONNACK, as the device edge reads and rewrites them (nothing else of MQTT:
after the CONNECT the edge passes bytes through)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from common.mqtt import remaining_length

CONNECT = 0x10
PROTOCOL_LEVEL = 4  # 3.1.1
MAX_CONNECT = 64 * 1024

# CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
ACCEPTED = 0
UNACCEPTABLE_PROTOCOL = 1
SERVER_UNAVAILABLE = 3
BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5


class MalformedConnect(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    keepalive: int
    clean_session: bool
    username: str | None
    password: bytes | None
    will_topic: str | None = None
    will_message: bytes = b""
    will_qos: int = 0
    will_retain: bool = False
    protocol_level: int = PROTOCOL_LEVEL

    def with_identity(self, client_id: str, username: str, password: str) -> Connect:
        return replace(self, client_id=client_id, username=username, password=password.encode())


def connack(code: int) -> bytes:
    return bytes((0x20, 2, 0, code))


def _remaining_length(data: bytes) -> tuple[int, int] | None:
    """(length, bytes the length took) of the fixed header after its first byte; None: incomplete."""
    value, shift = 0, 0
    for index in range(1, 5):
        if index >= len(data):
            return None
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7
    raise MalformedConnect("remaining length longer than four bytes")


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.body):
            raise MalformedConnect("CONNECT cut short")
        chunk = self.body[self.at : self.at + n]
        self.at += n
        return chunk

    def binary(self) -> bytes:
        (length,) = struct.unpack("!H", self.take(2))
        return self.take(length)

    def text(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedConnect("a CONNECT string is not UTF-8") from None


def parse(data: bytes) -> tuple[Connect, int] | None:
    """The CONNECT at the start of `data` and how many bytes it took; None while incomplete."""
    if not data:
        return None
    if data[0] != CONNECT:
        raise MalformedConnect("the first packet is not a CONNECT")
    header = _remaining_length(data)
    if header is None:
        return None
    length, width = header
    if length > MAX_CONNECT:
        raise MalformedConnect(f"CONNECT of {length} bytes (at most {MAX_CONNECT})")
    end = 1 + width + length
    if len(data) < end:
        return None
    reader = _Reader(data[1 + width : end])
    if reader.text() not in ("MQTT", "MQIsdp"):
        raise MalformedConnect("not the MQTT protocol")
    level, flags = reader.take(1)[0], reader.take(1)[0]
    if level != PROTOCOL_LEVEL:
        return Connect("", 0, True, None, None, protocol_level=level), end
    if flags & 0x01:
        raise MalformedConnect("reserved CONNECT flag set")
    (keepalive,) = struct.unpack("!H", reader.take(2))
    client_id = reader.text()
    will = bool(flags & 0x04)
    will_topic = reader.text() if will else None
    will_message = reader.binary() if will else b""
    username = reader.text() if flags & 0x80 else None
    password = reader.binary() if flags & 0x40 else None
    connect = Connect(
        client_id=client_id,
        keepalive=keepalive,
        clean_session=bool(flags & 0x02),
        username=username,
        password=password,
        will_topic=will_topic,
        will_message=will_message,
        will_qos=(flags >> 3) & 0x03 if will else 0,
        will_retain=bool(flags & 0x20) if will else False,
    )
    return connect, end


def _binary(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def encode(connect: Connect) -> bytes:
    flags = 0x02 if connect.clean_session else 0
    payload = _binary(connect.client_id.encode())
    if connect.will_topic is not None:
        flags |= 0x04 | (connect.will_qos << 3) | (0x20 if connect.will_retain else 0)
        payload += _binary(connect.will_topic.encode()) + _binary(connect.will_message)
    if connect.username is not None:
        flags |= 0x80
        payload += _binary(connect.username.encode())
    if connect.password is not None:
        flags |= 0x40
        payload += _binary(connect.password)
    body = _binary(b"MQTT") + bytes((PROTOCOL_LEVEL, flags)) + struct.pack("!H", connect.keepalive) + payload
    return bytes((CONNECT,)) + remaining_length(len(body)) + body
