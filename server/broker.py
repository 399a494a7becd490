"""A managed Mosquitto broker: tinyfleet starts and stops Debian's ``mosquitto`` itself.

Zero setup for the user: :class:`ManagedBroker` writes a config into a temporary
directory (loopback listener, a free port, optional per-device passwords and a topic ACL,
optional TLS), runs ``mosquitto -c`` in the foreground as a child process, waits until
it accepts TCP connections, and on exit terminates it and removes the directory (logs
are kept on request). ``docs/mosquitto.md`` documents the generated config.

Clients connect to it through :class:`tinyfleet.device.mqtt.BrokerAddress`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.errors import MissingToolError, TinyfleetError
from tinyfleet.processes import stop_process

LOG = logging.getLogger(__name__)

INSTALL_HINT = (
    "mosquitto is not installed: install it with `sudo apt-get install mosquitto` "
    "(Debian/Ubuntu) or pass --broker mqtt://HOST:PORT to use a running broker"
)
GATEWAY_USER = "tinyfleet-gateway"


def generate_credentials(device_ids: Iterable[str] = ()) -> dict[str, str]:
    """Random passwords (128 bits, URL-safe) for the gateway and each device id."""
    names = [GATEWAY_USER, *device_ids]
    return {name: secrets.token_urlsafe(16) for name in names}


class BrokerError(TinyfleetError):
    """The broker could not be started, or a broker address is unusable."""


def find_mosquitto() -> str:
    """Path of the ``mosquitto`` binary: ``$TINYFLEET_MOSQUITTO`` if set, else PATH, else
    /usr/sbin (Debian installs it there, outside a normal user's PATH)."""
    override = os.environ.get("TINYFLEET_MOSQUITTO")
    if override:
        found = shutil.which(override)
    else:
        found = shutil.which("mosquitto") or shutil.which(
            "mosquitto", path="/usr/sbin:/usr/local/sbin"
        )
    if not found:
        raise MissingToolError(INSTALL_HINT)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.01)
    return False


@dataclass(frozen=True)
class TlsFiles:
    """Server-side TLS: certificate, key and the CA clients verify against."""

    certfile: str
    keyfile: str
    cafile: str


class ManagedBroker:
    """Mosquitto as a child process on a loopback port. Use as a context manager.

    Parameters
    ----------
    port
        TCP port; ``None`` picks a free one.
    host
        Listener address (loopback by default: nothing outside this machine can connect).
    users
        ``{username: password}``. Anonymous clients are refused, the client id must be
        the username (``use_username_as_clientid``), and the ACL lets each device read
        only its own ``task`` topic and write only under its own id
        (``tinyfleet/<fleet>/<username>/...``); :data:`GATEWAY_USER` may do everything
        under ``tinyfleet/``.
    device_ids
        Without ``users``: generate random passwords for :data:`GATEWAY_USER` and these
        devices (secure by default); they are in :attr:`users` and, for operators, in
        :attr:`credentials_path` (``user:password`` lines, readable by the owner only).
    anonymous
        Opt out of authentication entirely (``allow_anonymous true``, no ACL): any local
        process may read every task and forge replies. For protocol tests only.
    tls
        Serve TLS instead of plain MQTT on ``port``.
    keep_logs
        Keep the working directory (config + ``mosquitto.log``) after :meth:`stop`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        users: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
        keep_logs: bool = False,
        start_timeout: float = 10.0,
        device_ids: Iterable[str] = (),
        anonymous: bool = False,
    ) -> None:
        self.binary = find_mosquitto()
        self.host = host
        self.port = int(port) if port else free_port(host)
        self.generated = users is None and not anonymous
        if users:
            self.users: dict[str, str] | None = dict(users)
        elif anonymous:
            self.users = None
        else:
            self.users = generate_credentials(device_ids)
        self.tls = tls
        self.keep_logs = keep_logs
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="tinyfleet-mosquitto-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: object | None = None

    # -- config -------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def address(self, username: str | None = None, password: str | None = None) -> BrokerAddress:
        """Address for a client; with ``users`` set, pass that client's credentials."""
        return BrokerAddress(
            self.host, self.port, username, password, self.tls.cafile if self.tls else None
        )

    @property
    def credentials_path(self) -> Path:
        """``user:password`` lines of generated credentials (mode 0600)."""
        return self.workdir / "credentials"

    def gateway_address(self) -> BrokerAddress:
        """Address with the gateway's login (or none on an anonymous broker)."""
        if self.users is None:
            return self.address()
        return self.address(GATEWAY_USER, self.users.get(GATEWAY_USER))

    def config_text(self) -> str:
        lines = [
            "# generated by tinyfleet (server/broker.py); see docs/mosquitto.md",
            "user root" if _is_root() else "",
            f"listener {self.port} {self.host}",
            "persistence false",
            # Nagle + delayed ACKs cost ~40 ms per small message each way otherwise.
            "set_tcp_nodelay true",
            "max_connections -1",
            "max_queued_messages 10000",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages false",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            lines += [
                "allow_anonymous false",
                # a device's credentials cannot take another client id's session
                "use_username_as_clientid true",
                f"password_file {self.workdir / 'passwd'}",
                f"acl_file {self.workdir / 'acl'}",
            ]
        if self.tls:
            lines += [
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                f"cafile {self.tls.cafile}",
                "tls_version tlsv1.2",
            ]
        return "\n".join(line for line in lines if line) + "\n"

    @staticmethod
    def acl_text() -> str:
        return (
            "# the gateway sees and sends everything under tinyfleet/\n"
            f"user {GATEWAY_USER}\n"
            "topic readwrite tinyfleet/#\n"
            "\n"
            "# every device (username = device id) reads its task, writes only its own topics\n"
            "pattern read tinyfleet/+/%u/task\n"
            "pattern write tinyfleet/+/%u/update\n"
            "pattern write tinyfleet/+/%u/status\n"
            "pattern write tinyfleet/+/%u/description\n"
        )

    def _write_files(self) -> None:
        self.config_path.write_text(self.config_text())
        if self.users is not None:
            passwd = self.workdir / "passwd"
            passwd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            tool = shutil.which("mosquitto_passwd")
            if tool is None:
                raise MissingToolError(
                    "mosquitto_passwd is not installed: `sudo apt-get install mosquitto`"
                )
            # -U hashes a plaintext "user:password" file in place (one call for any fleet).
            subprocess.run([tool, "-U", str(passwd)], check=True, capture_output=True)
            (self.workdir / "acl").write_text(self.acl_text())
            if self.generated:
                fd = os.open(self.credentials_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write("".join(f"{u}:{p}\n" for u, p in self.users.items()))

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> ManagedBroker:
        if self.running:
            return self
        self._write_files()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_handle = log
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if wait_for_port(self.host, self.port, 0.1):
                LOG.info(
                    "mosquitto listening on %s:%d (pid %d)", self.host, self.port, self._process.pid
                )
                return self
        tail = self.log_path.read_text(errors="replace")[-400:]
        self.stop()
        raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}: {tail.strip()}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate mosquitto (SIGTERM, then SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        stop_process(process, timeout)
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL): a crash, for fault tests."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def restart(self) -> None:
        """Stop and start again on the same port (clients must reconnect)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if not self.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ManagedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
