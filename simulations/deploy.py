"""``tinyfleet deploy local``: a whole Flower deployment on this machine, with real processes.

One **site** = one Mosquitto broker + its devices + one gateway SuperNode
(``flower-supernode``, whose ClientApp relays Flower Messages to the site's devices over
MQTT); one ``flower-superlink`` serves every site. The app (simulations/flower_app.py) is
started with ``flwr run``; its ServerApp asks each SuperNode which devices it serves and
sends each device's task to its site.

Device indices map onto sites in blocks: with ``D`` devices per site, site ``s``
(``site-s``) holds devices ``s*D .. s*D + D - 1`` (ids ``sim-NNNN``, NNNN = the index).
A device's data depend only on ``(seed, index, round)`` and the strategies pick devices by
index, so the final parameters equal an in-process ``tinyfleet simulate`` run with
``--devices S*D`` and the same seed (tests/simulations/test_deploy.py checks it).

Everything started here is stopped on return, on error and on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyfleet.device.mqtt import PASSWORD_ENV, BrokerAddress
from tinyfleet.device.wire.topics import device_ids
from tinyfleet.errors import TinyfleetError, UsageError
from tinyfleet.server.broker import GATEWAY_USER, ManagedBroker, free_port, wait_for_port
from tinyfleet.server.processes import ProcessGroup, find_tool, tool_env
from tinyfleet.simulations.deploy_tls import site_key
from tinyfleet.simulations.flower_app import DONE_FILE

CONNECTION = "tinyfleet-local"
FLEET = "default"


class DeployError(TinyfleetError):
    """The local deployment could not start or its run failed."""


@dataclass(frozen=True)
class DeploySettings:
    """What ``tinyfleet deploy local`` runs (see the module docstring)."""

    sites: int = 2
    devices_per_site: int = 2
    rounds: int = 5
    seed: int = 0
    use_case: str = "sine"
    strategies: str = "tinyreptile"
    out: Path = Path("tinyfleet-deploy")
    superlink: str | None = None  # HOST:PORT of a running SuperLink (None: start one)
    superlink_port: int | None = None  # port for the SuperLink started here
    site_brokers: tuple[str, ...] = ()  # mqtt:// URL per site (empty: start Mosquitto)
    run_config: dict[str, Any] = field(default_factory=dict)  # more app run config keys
    timeout: float = 600.0
    tls_dir: Path | None = None  # certificates (simulations/deploy_tls.py); None = insecure
    supernode_auth: bool = False

    def __post_init__(self) -> None:
        for name in ("sites", "devices_per_site", "rounds"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        if self.seed < 0:
            raise UsageError("--seed must be >= 0")
        if self.site_brokers and len(self.site_brokers) != self.sites:
            raise UsageError(
                f"--site-broker given {len(self.site_brokers)} times for {self.sites} sites"
            )

    @property
    def devices(self) -> int:
        return self.sites * self.devices_per_site

    def site_indices(self, site: int) -> range:
        """Device indices of site ``site`` (blocks of ``devices_per_site``)."""
        d = self.devices_per_site
        return range(site * d, (site + 1) * d)


def app_dir() -> Path:
    """The Flower App folder: the checkout holding pyproject.toml's ``[tool.flwr.app]``."""
    import tinyfleet

    root = Path(tinyfleet.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise DeployError(f"no pyproject.toml next to the tinyfleet package ({root})")
    return root


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listen_port(low: int = 20000, high: int = 32000) -> int:
    """A free port below the OS's ephemeral range (32768+), which a fleet's many client
    connections use up: a port from ``free_port()`` was taken again before the SuperNode
    bound it with 4 x 250 devices."""
    start = random.randrange(low, high)
    for port in [*range(start, high), *range(low, start)]:
        if _port_free(port):
            return port
    return free_port()


def _reachable(host: str, port: int) -> bool:
    return wait_for_port(host, port, 0.5)


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--superlink must be HOST:PORT, got {value!r}")
    return host, int(port)


def run_config_arg(values: dict[str, Any]) -> str:
    """``key=value`` pairs for ``flwr run --run-config`` (strings quoted)."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            parts.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, int | float):
            parts.append(f"{key}={value}")
        else:
            parts.append(f"{key}={json.dumps(str(value))}")
    return " ".join(parts)


def flower_home(folder: Path, address: str, tls_ca: Path | None) -> Path:
    """A FLWR_HOME whose config.toml has the SuperLink connection :data:`CONNECTION`."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
    lines.append(f'address = "{address}"')
    if tls_ca is None:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{tls_ca}"')
    (folder / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a deployment like Ctrl-C does (everything is cleaned up)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def deploy_local(settings: DeploySettings, log: Any = None) -> dict[str, Any]:
    """Start SuperLink, brokers, devices, SuperNodes; ``flwr run``; stop all; the report."""
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(settings.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    done_path = out / DONE_FILE
    for stale in (report_path, done_path):
        stale.unlink(missing_ok=True)
    home = out / "flwr-home"  # Flower's state for every process started here
    with _sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        procs = stack.enter_context(ProcessGroup(out / "logs", tool_env({"FLWR_HOME": str(home)})))
        tls = _tls_files(settings)
        address = _superlink(settings, procs, tls, say)
        flower_home(home, address, tls["ca"] if tls else None)
        addresses = _brokers(settings, stack)
        _supernodes(settings, procs, address, addresses, tls)
        _devices(settings, procs, addresses)
        config = {
            "use-case": settings.use_case,
            "strategy": settings.strategies,
            "rounds": settings.rounds,
            "seed": settings.seed,
            "devices": settings.devices,
            "sites": settings.sites,
            "out-dir": str(out),
            **settings.run_config,
        }
        say(f"deploy: flwr run ({settings.sites} sites x {settings.devices_per_site} devices)")
        started = time.monotonic()
        runner = procs.start(
            "flwr-run",
            [
                find_tool("flwr"),
                "run",
                str(app_dir()),
                CONNECTION,
                "--stream",
                "--run-config",
                run_config_arg(config),
            ],
        )
        peak: dict[str, float] = {}
        _wait_for_report(settings.timeout, procs, runner, done_path, out, peak)
        wall = time.monotonic() - started
        procs.remember_descendants()
    report: dict[str, Any] = json.loads(report_path.read_text())
    report["deployment"] = {
        "sites": settings.sites,
        "devices_per_site": settings.devices_per_site,
        "site_of_device": "index // devices_per_site",
        "superlink": address,
        "tls": settings.tls_dir is not None,
        "supernode_auth": settings.supernode_auth,
        "run_wall_s": round(wall, 2),
        "peak_rss_mb": peak,
    }
    report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def _tls_files(settings: DeploySettings) -> dict[str, Path] | None:
    if settings.tls_dir is None:
        return None
    folder = Path(settings.tls_dir)
    files = {"ca": folder / "ca.crt", "cert": folder / "server.pem", "key": folder / "server.key"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise UsageError(f"TLS files missing: {', '.join(missing)} (tinyfleet deploy certs DIR)")
    return files


def _superlink(
    settings: DeploySettings, procs: ProcessGroup, tls: dict[str, Path] | None, say: Any
) -> str:
    if settings.superlink is not None:
        host, port = _split_hostport(settings.superlink)
        if not _reachable(host, port):
            raise DeployError(f"no SuperLink at {host}:{port} (nothing listens there)")
        return f"{host}:{port}"
    port = settings.superlink_port or free_port()
    if not _port_free(port):
        raise DeployError(f"SuperLink port {port} is already in use on 127.0.0.1")
    argv = [
        find_tool("flower-superlink"),
        "--port",
        str(port),
        "--disable-runtime-dependency-installation",
    ]
    if tls is None:
        argv.append("--insecure")
    else:
        argv += [
            "--ssl-ca-certfile",
            str(tls["ca"]),
            "--ssl-certfile",
            str(tls["cert"]),
            "--ssl-keyfile",
            str(tls["key"]),
        ]
    if settings.supernode_auth:
        argv.append("--enable-supernode-auth")
    link = procs.start("superlink", argv)
    deadline = time.monotonic() + 120
    while not _reachable("127.0.0.1", port):
        if link.process.poll() is not None or time.monotonic() > deadline:
            raise DeployError(f"flower-superlink did not start: {link.log_tail(3)}")
    say(f"deploy: SuperLink on 127.0.0.1:{port}")
    return f"127.0.0.1:{port}"


@dataclass(frozen=True)
class _SiteBroker:
    """A site's broker and its generated passwords (None for a user's broker URL)."""

    address: BrokerAddress
    gateway_user: str | None = None
    gateway_password: str | None = None
    device_password: str | None = None

    @staticmethod
    def env(base: Mapping[str, str], password: str | None) -> dict[str, str] | None:
        return None if password is None else {**base, PASSWORD_ENV: password}


def _brokers(settings: DeploySettings, stack: contextlib.ExitStack) -> list[_SiteBroker]:
    brokers = []
    ids = device_ids(settings.devices)
    for site in range(settings.sites):
        if settings.site_brokers:
            address = BrokerAddress.parse(settings.site_brokers[site])
            if not _reachable(address.host, address.port):
                raise DeployError(f"site-{site}: broker {address.url} is down (no answer)")
            brokers.append(_SiteBroker(address))
            continue
        # Secure by default (logins, ACL, username = client id); `device run --count N`
        # logs its devices in with one password (each still only reaches its own topics).
        site_password = secrets.token_urlsafe(18)
        users = {GATEWAY_USER: secrets.token_urlsafe(18)}
        users.update({ids[i]: site_password for i in settings.site_indices(site)})
        broker = stack.enter_context(ManagedBroker(users=users))
        brokers.append(
            _SiteBroker(broker.address(), GATEWAY_USER, users[GATEWAY_USER], site_password)
        )
    return brokers


def _devices(settings: DeploySettings, procs: ProcessGroup, brokers: Sequence[_SiteBroker]) -> None:
    for site, broker in enumerate(brokers):
        address = broker.address
        first = settings.site_indices(site).start
        # `device run --count 1` takes --device-id as the whole id, more as a prefix.
        name = "sim" if settings.devices_per_site > 1 else device_ids(first + 1)[first]
        procs.start(
            f"devices-site-{site}",
            [
                sys.executable,
                "-m",
                "tinyfleet",
                "device",
                "run",
                "--broker",
                address.url,
                "--device-id",
                name,
                "--count",
                str(settings.devices_per_site),
                "--device-index",
                str(first),
                "--use-case",
                settings.use_case,
                "--fleet",
                FLEET,
            ],
            env=broker.env(procs.env, broker.device_password),
        )


def _supernodes(
    settings: DeploySettings,
    procs: ProcessGroup,
    superlink: str,
    brokers: Sequence[_SiteBroker],
    tls: dict[str, Path] | None,
) -> None:
    ids = device_ids(settings.devices)
    for site, broker in enumerate(brokers):
        members = ",".join(ids[i] for i in settings.site_indices(site))
        address = broker.address
        if broker.gateway_user is not None:
            address = address.with_credentials(broker.gateway_user, None)
        node_config = (
            f"broker='{address.url}' site='site-{site}' fleet='{FLEET}' devices='{members}'"
        )
        if broker.gateway_password is not None:  # an owner-only file, not the command line
            (secret := procs.log_dir / f"gateway-site-{site}.password").touch(mode=0o600)
            secret.write_text(broker.gateway_password, encoding="utf-8")
            node_config += f" password-file='{secret}'"
        argv = [
            find_tool("flower-supernode"),
            "--superlink",
            superlink,
            "--port",
            str(_listen_port()),
            "--node-config",
            node_config,
            "--max-wait-time",
            "60",
        ]
        if tls is None:
            argv.append("--insecure")
        else:
            argv += ["--root-certificates", str(tls["ca"])]
        if settings.supernode_auth and settings.tls_dir is not None:
            key = site_key(settings.tls_dir, site)
            _register_supernode(procs, key.with_suffix(".pub"), site)
            argv += ["--auth-supernode-private-key", str(key)]
        procs.start(
            f"supernode-site-{site}", argv, env=broker.env(procs.env, broker.gateway_password)
        )


def _register_supernode(procs: ProcessGroup, public_key: Path, site: int) -> None:
    """``flwr supernode register``: the SuperLink then accepts this site's SuperNode."""
    if not public_key.is_file():
        raise UsageError(f"no SuperNode key {public_key} (tinyfleet deploy certs DIR --sites N)")
    code, tail = procs.run_once(
        f"register-site-{site}",
        [
            find_tool("flwr"),
            "supernode",
            "register",
            str(public_key),
            CONNECTION,
            "--name",
            f"site-{site}",
        ],
        timeout=120,
    )
    if code != 0:
        raise DeployError(f"site-{site}: SuperNode key not registered: {tail}")


def _wait_for_report(
    timeout: float,
    procs: ProcessGroup,
    runner: Any,
    done_path: Path,
    out: Path,
    peak_rss: dict[str, float],
) -> None:
    """Wait for the app's done file; record each process tree's peak RSS (MB)."""
    deadline = time.monotonic() + timeout
    sampled = 0.0
    while not done_path.exists():
        procs.remember_descendants()
        if time.monotonic() - sampled > 2.0:
            sampled = time.monotonic()
            for name, mb in procs.rss_mb().items():
                peak_rss[name] = max(peak_rss.get(name, 0.0), mb)
        if runner.process.poll() is not None:
            # `flwr run --stream` ends with the run; the report may still be being written.
            time.sleep(1.0)
            if done_path.exists():
                break
            raise DeployError(
                f"the run ended without a report: {runner.log_tail(2)} (logs: {out / 'logs'})"
            )
        for member in procs.members:
            if member is not runner and member.process.poll() is not None:
                raise DeployError(
                    f"{member.name} exited with code {member.process.returncode}: "
                    f"{member.log_tail(2)} (log: {member.log_path})"
                )
        if time.monotonic() > deadline:
            raise DeployError(f"no report within {timeout:.0f} s (logs: {out / 'logs'})")
        time.sleep(0.2)
