"""The one MQTT client factory: every paho client of tinyfleet is made here.

Device clients (:mod:`tinyfleet.device.mqtt_client`, and through them the serial bridge)
and the server's gateway (:mod:`tinyfleet.server.gateway`) connect with
:func:`make_client`: paho-mqtt 2.x callbacks, login and TLS from a
:class:`BrokerAddress`, an optional Last Will (the device's retained ``offline`` status),
reconnect backoff, and ``TCP_NODELAY`` so small task/update messages go out at once.
:func:`start_client` connects in paho's background thread and waits for the CONNACK;
:func:`stop_client` disconnects before stopping the loop (else paho waits ~1 s).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tinyfleet.device.mqtt_client import DeviceSettings
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tinyfleet.errors import InputFileError, UsageError

#: where ``device run`` and ``server run`` read a broker password from when no flag gives it
PASSWORD_ENV = "TINYFLEET_MQTT_PASSWORD"


def read_password(value: str | None, path: str | None) -> str | None:
    """The password from a flag, a file (first line), or $TINYFLEET_MQTT_PASSWORD."""
    import os

    if value is not None and path is not None:
        raise UsageError("give --password or --password-file, not both")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as error:
            raise InputFileError(f"cannot read password file {path}: {error.strerror}") from None
        if not value:
            raise InputFileError(f"password file {path} is empty")
    if value is None:
        value = os.environ.get(PASSWORD_ENV) or None
    return value


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens and how to log in.

    ``tls_ca`` (a CA file) switches TLS on; ``mqtts://`` URLs need it.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None

    def __post_init__(self) -> None:
        if not 0 < int(self.port) < 65536:
            raise UsageError(f"broker port must be 1..65535, got {self.port}")
        if not self.host:
            raise UsageError("broker host is empty")

    def device_settings(self, device_id: str, **options: Any) -> DeviceSettings:
        """Settings for a device client connecting here as ``device_id``; ``options``
        (fleet, max_payload, description, or username/password to log in otherwise) go to
        :class:`~tinyfleet.device.mqtt_client.DeviceSettings`."""
        from tinyfleet.device.mqtt_client import DeviceSettings  # it imports this module

        login = {"username": self.username, "password": self.password, "tls_ca": self.tls_ca}
        return DeviceSettings(device_id, self.host, self.port, **(login | options))

    @classmethod
    def parse(cls, url: str, tls_ca: str | None = None) -> BrokerAddress:
        """Parse ``mqtt://[user[:password]@]host[:port]`` (or ``mqtts://``, port 8883).

        An empty URL, or one without a host, is refused (it used to mean 127.0.0.1:1883).
        """
        if not url or not url.strip():
            raise UsageError("broker URL is empty: give mqtt://host:port")
        url = url.strip()
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise UsageError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if parts.scheme == "mqtts" and not tls_ca:
            raise UsageError(f"broker URL {url!r} uses TLS: pass the CA file (--tls-ca)")
        try:
            port = parts.port
        except ValueError as error:
            raise UsageError(f"broker URL {url!r}: {error}") from None
        if not parts.hostname or any(c.isspace() for c in parts.hostname):
            raise UsageError(f"broker URL {url!r} names no host: give mqtt://host:port")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"broker URL {url!r}: unexpected path or query after host:port")
        return cls(
            host=parts.hostname,
            port=port or (8883 if parts.scheme == "mqtts" else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls_ca=tls_ca,
        )

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, username, password, self.tls_ca)

    @property
    def url(self) -> str:
        """The URL without the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls_ca else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for a client that vanishes without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def make_client(
    client_id: str,
    connected: threading.Event,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
    will: LastWill | None = None,
    reconnect_min_s: float = 0.1,
    reconnect_max_s: float = 5.0,
    mqtt5: bool = False,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A paho 2.x client (MQTT 3.1.1, clean session) set up as tinyfleet's clients are.

    ``connected`` is cleared whenever the connection drops; the caller's ``on_connect``
    sets it once it has subscribed (and announced itself). ``mqtt5`` speaks MQTT 5 (for
    session expiry on a sleeping device, message expiry on the tasks a gateway sends);
    :func:`start_client` then says whether the session persists. ``manual_ack`` (MQTT
    5 only): the caller acknowledges each QoS 1 message itself (``client.ack``); one it
    does not acknowledge stays with the broker and comes again on the next connect.
    """
    if mqtt5:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
    else:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
    if username is not None:
        client.username_pw_set(username, password)
    if tls_ca:
        client.tls_set(ca_certs=tls_ca)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)  # type: ignore[arg-type]
    client.on_socket_open = _no_delay

    def on_disconnect(*_args: Any) -> None:
        connected.clear()

    client.on_disconnect = on_disconnect
    return client


def connack_refusal(reason: Any) -> str | None:
    """Why the broker refused a CONNECT (paho's CONNACK reason), or None if it accepted."""
    if getattr(reason, "is_failure", False):
        return str(reason)
    return None


def start_client(
    client: mqtt.Client,
    host: str,
    port: int,
    keepalive: int,
    connected: threading.Event,
    wait: float | None,
    session_expiry_s: int | None = None,
) -> bool:
    """Connect in the background (paho's thread reconnects on its own); with ``wait``,
    block until ``connected`` is set (by the caller's on_connect) and say whether it was.

    ``session_expiry_s`` (an MQTT 5 client only) keeps the session that long after a
    disconnect: its subscriptions stay and the broker queues QoS 1 messages for it (a
    sleeping device gets its tasks when it wakes), instead of a clean start.
    """
    if session_expiry_s is not None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(session_expiry_s)
        client.connect_async(host, port, keepalive, clean_start=False, properties=props)
    else:
        client.connect_async(host, port, keepalive)
    client.loop_start()
    return wait is None or connected.wait(wait)


def stop_client(client: mqtt.Client, connected: threading.Event) -> None:
    """Disconnect, then stop the network thread (in that order: no ~1 s wait)."""
    client.disconnect()
    client.loop_stop()
    connected.clear()


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Disable Nagle's algorithm: small task/update messages go out at once."""
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
