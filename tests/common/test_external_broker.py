"""An external broker over TLS and WebSockets (MQTT_URL, MQTT_TLS_CA_FILE): a second Mosquitto with a
certificate this test makes and signs with its own CA, on an mqtts://, a wss:// and a ws:// listener."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.mosquitto import find_mosquitto
from broker.passwords import write_password_file
from common.mqtt import MqttConnection, MqttOptions
from common.settings import MqttSettings, SettingsError
from local_stack.ports import free_port, wait_for_port
from tests.conftest import stop_process
from tests.helpers import client, wait_until

PASSWORD = secrets.token_urlsafe(12)


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:
    """With the extensions Python 3.13's strict verification wants (key identifiers, key usage)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    if ca:
        usage = {"key_cert_sign": True, "crl_sign": True, "digital_signature": False}
    else:
        usage = {"key_cert_sign": False, "crl_sign": False, "digital_signature": True}
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    return builder.sign(signer, hashes.SHA256())


def make_certificates(directory: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns the CA's file."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _certificate("test CA", ca_key, ca_name, ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    key_format = serialization.PrivateFormat.TraditionalOpenSSL
    (directory / "server.key").write_bytes(server_key.private_bytes(pem, key_format, serialization.NoEncryption()))
    return directory / "ca.pem"


@pytest.fixture(scope="module")
def external_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto): no second broker to test TLS against")
    directory = tmp_path_factory.mktemp("external-broker")
    ca_file = make_certificates(directory)
    write_password_file(directory / "passwords", {"gateway": PASSWORD, "api": PASSWORD})
    ports = {"mqtts": free_port(), "wss": free_port(), "ws": free_port()}
    tls = f"cafile {ca_file}\ncertfile {directory / 'server.pem'}\nkeyfile {directory / 'server.key'}\n"
    config = (
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {directory / 'passwords'}\n"
        f"listener {ports['mqtts']} 127.0.0.1\n{tls}"
        f"listener {ports['wss']} 127.0.0.1\nprotocol websockets\n{tls}"
        f"listener {ports['ws']} 127.0.0.1\nprotocol websockets\n"
    )
    if os.getuid() == 0:
        config += f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    (directory / "mosquitto.conf").write_text(config)
    log = (directory / "mosquitto.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(directory / "mosquitto.conf")], stdout=log, stderr=log)
    try:
        for port in ports.values():
            wait_for_port(port)
        yield {"ports": ports, "ca_file": ca_file}
    finally:
        stop_process(process)


def settings_for(url: str, ca_file: object | None) -> MqttSettings:
    env = {"MQTT_URL": url, "MQTT_GATEWAY_PASSWORD": PASSWORD, "MQTT_API_PASSWORD": PASSWORD}
    if ca_file is not None:
        env["MQTT_TLS_CA_FILE"] = str(ca_file)
    return MqttSettings.from_env(env)


@pytest.mark.parametrize("scheme", ["mqtts", "wss", "ws"])
async def test_the_programs_connection_works_over_tls_and_websockets(
    external_broker: dict[str, object], scheme: str
) -> None:
    port = external_broker["ports"][scheme]  # type: ignore[index]
    path = "/mqtt" if scheme.startswith("ws") else ""
    settings = settings_for(f"{scheme}://127.0.0.1:{port}{path}", external_broker["ca_file"])
    received: list[bytes] = []

    async def on_message(message: aiomqtt.Message) -> None:
        received.append(bytes(message.payload))

    connection = MqttConnection(
        settings,
        MqttOptions(component="gateway", client_id=f"gw-{scheme}", subscriptions=[("saic/x/vehicles/+/cmd/+", 1)]),
        on_message,
    )
    task = asyncio.create_task(connection.run())
    try:
        await connection.wait_connected(10)
        async with client(settings, "api") as api:
            await api.publish("saic/x/vehicles/V1/cmd/lock", b"over " + scheme.encode(), qos=1)
            await wait_until(lambda: bool(received), what=f"a command over {scheme}")
    finally:
        await connection.close()
        task.cancel()
    assert received == [b"over " + scheme.encode()]


async def test_a_certificate_from_an_unknown_ca_is_refused(external_broker: dict[str, object]) -> None:
    port = external_broker["ports"]["mqtts"]  # type: ignore[index]
    settings = settings_for(f"mqtts://127.0.0.1:{port}", None)  # the system's CAs only
    with pytest.raises(aiomqtt.MqttError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        async with client(settings, "api"):
            pass


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"MQTT_URL": "http://broker:1883"}, "MQTT_URL"),
        ({"MQTT_URL": "mqtts://broker:8883", "MQTT_TLS_CA_FILE": "/nonexistent/ca.pem"}, "MQTT_TLS_CA_FILE"),
    ],
)
def test_a_bad_broker_address_is_refused_with_the_reason(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        MqttSettings.from_env(env).tls_context()


def test_the_url_gives_transport_tls_port_and_path() -> None:
    assert settings_for("wss://broker.example.com/ws", None).endpoint().path == "/ws"
    endpoint = settings_for("mqtts://broker.example.com", None).endpoint()
    assert (endpoint.port, endpoint.transport, endpoint.tls) == (8883, "tcp", True)
    plain = MqttSettings.from_env({"MQTT_PORT": "1999"}).endpoint()
    assert (plain.host, plain.port, plain.tls, plain.path) == ("127.0.0.1", 1999, False, None)
