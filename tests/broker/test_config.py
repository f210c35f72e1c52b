from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import BrokerConfigError, load_config, render_mosquitto_conf
from broker.passwords import hash_password, read_password_file, verify_password, write_password_file
from common.mqtt import MAX_PACKET_SIZE

ROOT = Path(__file__).resolve().parents[2]


def test_project_config_serves_both_brokers() -> None:
    config = load_config(ROOT / "mosquitto" / "mosquitto.conf").with_port(18999)
    assert (config.bind, config.port, config.allow_anonymous) == ("127.0.0.1", 18999, False)
    rendered = render_mosquitto_conf(config, run_as=None)
    assert "listener 18999 127.0.0.1" in rendered
    assert "allow_anonymous false" in rendered
    assert "set_tcp_nodelay true" in rendered  # a command's PUBLISH must not wait for a delayed ACK
    # The programs never publish what the broker would close their connection over.
    assert f"max_packet_size {MAX_PACKET_SIZE}" in rendered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listener 1883\npassword_file p\nacl_file a", "bind address"),
        ("listener 1883 127.0.0.1\nacl_file a", "missing password_file"),
        ("listener 1883 127.0.0.1\npassword_file p\nacl_file a\nbridge x", "'bridge' is not supported"),
        ("listener x 127.0.0.1\npassword_file p\nacl_file a", "expected an integer"),
    ],
)
def test_bad_config_is_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mosquitto.conf"
    path.write_text(text)
    with pytest.raises(BrokerConfigError, match=message):
        load_config(path)


def test_password_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    write_password_file(path, {"gateway": "s3cret", "ingest": "other"})
    entries = read_password_file(path)
    assert entries["gateway"].startswith("$7$101$")
    assert verify_password("s3cret", entries["gateway"])
    assert not verify_password("wrong", entries["gateway"])
    assert not verify_password("s3cret", "$6$notsupported")
    assert path.stat().st_mode & 0o077 == 0


def test_hash_is_salted() -> None:
    assert hash_password("x") != hash_password("x")
