"""Reads `mosquitto/mosquitto.conf` once for both brokers and renders the runtime copy for Mosquitto."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

SUPPORTED = frozenset(
    {
        "listener",
        "allow_anonymous",
        "per_listener_settings",
        "password_file",
        "acl_file",
        "sys_interval",
        "persistence",
        "max_keepalive",
        "max_queued_messages",
        "set_tcp_nodelay",
        "max_packet_size",
    }
)


MQTT_MAX_PACKET_SIZE = 268_435_455  # the largest remaining length MQTT 3.1.1 can encode


class BrokerConfigError(ValueError):
    pass


@dataclass(frozen=True)
class BrokerConfig:
    bind: str
    port: int
    allow_anonymous: bool
    password_file: Path
    acl_file: Path
    sys_interval: int
    max_keepalive: int
    persistence: bool
    max_queued_messages: int
    tcp_nodelay: bool
    max_packet_size: int

    def with_port(self, port: int) -> BrokerConfig:
        return replace(self, port=port)

    def with_password_file(self, path: Path) -> BrokerConfig:
        return replace(self, password_file=path)


def _flag(value: str, where: str) -> bool:
    if value not in ("true", "false"):
        raise BrokerConfigError(f"{where}: expected true or false, got {value!r}")
    return value == "true"


def _int(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BrokerConfigError(f"{where}: expected an integer, got {value!r}") from None


def load_config(path: Path) -> BrokerConfig:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        where = f"{path}:{number}"
        if key not in SUPPORTED:
            raise BrokerConfigError(f"{where}: directive {key!r} is not supported by both brokers")
        if key in values:
            raise BrokerConfigError(f"{where}: {key!r} given twice (one listener only)")
        values[key] = value.strip()
    missing = {"listener", "password_file", "acl_file"} - values.keys()
    if missing:
        raise BrokerConfigError(f"{path}: missing {', '.join(sorted(missing))}")
    port_text, _, bind = values["listener"].partition(" ")
    if not bind:
        raise BrokerConfigError(f"{path}: the listener must name its bind address (127.0.0.1)")
    base = path.parent
    return BrokerConfig(
        bind=bind,
        port=_int(port_text, f"{path}: listener"),
        allow_anonymous=_flag(values.get("allow_anonymous", "false"), f"{path}: allow_anonymous"),
        password_file=base / values["password_file"],
        acl_file=base / values["acl_file"],
        sys_interval=_int(values.get("sys_interval", "10"), f"{path}: sys_interval"),
        max_keepalive=_int(values.get("max_keepalive", "65535"), f"{path}: max_keepalive"),
        persistence=_flag(values.get("persistence", "false"), f"{path}: persistence"),
        max_queued_messages=_int(values.get("max_queued_messages", "1000"), f"{path}: max_queued_messages"),
        tcp_nodelay=_flag(values.get("set_tcp_nodelay", "false"), f"{path}: set_tcp_nodelay"),
        max_packet_size=_int(values.get("max_packet_size", str(MQTT_MAX_PACKET_SIZE)), f"{path}: max_packet_size"),
    )


def render_mosquitto_conf(config: BrokerConfig, *, run_as: str | None) -> str:
    lines = [
        f"listener {config.port} {config.bind}",
        f"allow_anonymous {str(config.allow_anonymous).lower()}",
        f"password_file {config.password_file}",
        f"acl_file {config.acl_file}",
        f"sys_interval {config.sys_interval}",
        f"max_keepalive {config.max_keepalive}",
        f"persistence {str(config.persistence).lower()}",
        f"max_queued_messages {config.max_queued_messages}",
        f"set_tcp_nodelay {str(config.tcp_nodelay).lower()}",
        f"max_packet_size {config.max_packet_size}",
        "log_dest stderr",  # unbuffered: stdout into a pipe holds lines until 4 KiB have piled up
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if run_as:
        # As root Mosquitto would switch to the `mosquitto` user, which cannot read our files.
        lines.append(f"user {run_as}")
    return "\n".join(lines) + "\n"
