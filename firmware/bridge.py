"""The serial bridge: firmware on a serial link takes part in MQTT federated rounds.

A board (or QEMU's UART on a TCP port, or the host build behind a pipe) speaks COBS+CRC
frames (``tinyfleet_device.h``): the bridge forwards each TRAIN task as the same wire bytes the
broker carried (``'T'`` frame), then feeds the device its ``k`` samples one at a time
(``'S'`` frames, or ``'A'`` frames of raw audio for firmware with the keyword front end:
the bridge is the board's sensor here, drawing exactly the samples a Python device would
draw, from the same seeded stream), and turns the firmware's
``'R'`` REPLY (phi, loss, computed by the C head) into the MQTT reply. The MQTT side is
:class:`tinyfleet.device.mqtt_client.MqttDevice`, unchanged: the firmware is just
another device to the gateway.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from tinyfleet.device import wire
from tinyfleet.device.boards import get_board
from tinyfleet.device.frontend import CLIP_SAMPLES
from tinyfleet.device.head import HeadSpec
from tinyfleet.device.rounds import SampleStream, Trainer, upload_array
from tinyfleet.device.wire import MessageType, WireMessage
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND, RoundPlan
from tinyfleet.errors import TinyfleetError, UsageError
from tinyfleet.firmware.framing import FrameError, decode_frame, encode_frame
from tinyfleet.firmware.toolchain import QEMU


class LinkError(TinyfleetError):
    """The serial link failed: closed, timed out, or the firmware refused a task."""


class FramedLink:
    """COBS+CRC frames over a pair of file descriptors (socket, pipe or tty)."""

    def __init__(self, read_fd: int, write_fd: int, timeout: float = 60.0) -> None:
        self.read_fd, self.write_fd, self.timeout = read_fd, write_fd, timeout
        self._buffer = bytearray()

    def send(self, kind: bytes, body: bytes = b"") -> None:
        data = encode_frame(kind + body)
        while data:
            written = os.write(self.write_fd, data)
            data = data[written:]

    def recv(self) -> tuple[bytes, bytes]:
        """Next valid frame as ``(kind, body)``; corrupt frames are skipped."""
        deadline = time.monotonic() + self.timeout
        while True:
            end = self._buffer.find(0)
            if end >= 0:
                body = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if not body:
                    continue
                try:
                    payload = decode_frame(body)
                except FrameError:
                    continue
                if payload:
                    return payload[:1], payload[1:]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(f"no frame from the firmware within {self.timeout:.0f} s")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    raise LinkError("the serial link was closed")
                self._buffer += chunk


def open_port(port: str, timeout: float = 60.0) -> tuple[FramedLink, contextlib.ExitStack]:
    """``tcp:HOST:PORT`` (e.g. QEMU's UART) or a serial device / pty path."""
    stack = contextlib.ExitStack()
    if port.startswith("tcp:"):
        host, _, number = port[4:].rpartition(":")
        try:
            sock = socket.create_connection((host or "127.0.0.1", int(number)), timeout=10)
        except (OSError, ValueError) as error:
            raise LinkError(f"cannot connect to {port}: {error}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stack.callback(sock.close)
        return FramedLink(sock.fileno(), sock.fileno(), timeout), stack
    import termios
    import tty

    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    except OSError as error:
        raise LinkError(f"cannot open {port}: {error.strerror}") from None
    stack.callback(os.close, fd)
    with contextlib.suppress(termios.error):
        tty.setraw(fd)  # a real tty/pty: no echo, no line discipline
        # A USB-serial adapter to a board's UART runs at the firmware's rate (the
        # nRF52840 port's UARTE0: 115200 8N1); a pty ignores it.
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return FramedLink(fd, fd, timeout), stack


@contextlib.contextmanager
def host_device(binary: str | Path, timeout: float = 60.0) -> Iterator[FramedLink]:
    """The host build of the device loop behind a pipe."""
    proc = subprocess.Popen(
        [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        yield FramedLink(proc.stdout.fileno(), proc.stdin.fileno(), timeout)
        with contextlib.suppress(OSError):
            FramedLink(proc.stdout.fileno(), proc.stdin.fileno()).send(b"Q")
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def qemu_device(
    elf: str | Path, timeout: float = 120.0, machine: str = "mps2-an386", icount: bool = False
) -> Iterator[FramedLink]:
    """The device loop on QEMU's ``machine`` (default mps2-an386), its UART0 on a loopback
    TCP port; ``icount``: ``-icount shift=0``, so that SysTick counts instructions."""
    port = _free_port()
    cmd = [
        QEMU, "-M", machine, "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native",
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
        "-kernel", str(Path(elf).resolve()),
    ]  # fmt: skip
    if icount:
        cmd += ["-icount", "shift=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        sock = None
        deadline = time.monotonic() + 20
        while sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise LinkError("QEMU did not open its UART port") from None
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            link = FramedLink(sock.fileno(), sock.fileno(), timeout)
            yield link
            with contextlib.suppress(OSError):
                link.send(b"Q")
            proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _sample_bytes(spec: HeadSpec, x: np.ndarray, y: object) -> bytes:
    return _target_bytes(spec, np.asarray(x, dtype="<f4").reshape(-1).tobytes(), y)


def _audio_bytes(spec: HeadSpec, pcm: np.ndarray, y: object) -> bytes:
    """An ``'A'`` frame body: 1 s of int16 little-endian PCM, then the target."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16 or samples.shape != (CLIP_SAMPLES,):
        raise UsageError(
            f"an audio window is {CLIP_SAMPLES} int16 samples, got {samples.dtype} {samples.shape}"
        )
    return _target_bytes(spec, samples.astype("<i2").tobytes(), y)


def _target_bytes(spec: HeadSpec, body: bytes, y: object) -> bytes:
    if spec.loss == "mse":
        return body + np.asarray(y, dtype="<f4").reshape(-1).tobytes()
    return body + int(np.asarray(y).reshape(-1)[0]).to_bytes(4, "little", signed=True)


@dataclass
class FirmwareTrainer:
    """Trains on the firmware: a per-task :data:`~tinyfleet.device.rounds.Trainer` for
    :class:`~tinyfleet.device.mqtt_client.RoundTaskHandler` (``trainer_for_task``).

    The round function draws the samples (``stream_for_device(seed, index)`` with
    ``round_rng(seed, index, round)``, as a Python device does); this trainer forwards the
    TRAIN task to the firmware (``'T'`` frame), feeds it the ``k`` samples one at a time
    (``'S'`` frames) and reads phi and the loss from its ``'R'`` reply. Online rounds only.
    ``history`` keeps ``(round, device index, theta, phi)`` of every answered task.

    ``audio`` (firmware built from a model card whose input is raw audio, see
    :func:`tinyfleet.device.frontend.card_takes_audio`): each sample goes as an ``'A'``
    frame of 1 s of 16 kHz int16 PCM, drawn with the stream's ``sample_audio(n, rng)``
    (the same draws as its ``sample``), and the firmware computes the features itself.
    """

    link: FramedLink
    spec: HeadSpec
    history: list[tuple[int, int, np.ndarray, np.ndarray]] = field(default_factory=list)
    audio: bool = False
    #: The update arrays a TinyMetaFed build encoded itself, by task ``msg_id``.
    updates: dict[int, wire.WireArray] = field(default_factory=dict)

    def upload_for_task(self, task: WireMessage) -> Callable[..., wire.WireArray]:
        """For :class:`RoundTaskHandler`: forward the firmware's own Top-P% int8 update
        (a TinyMetaFed build); else the plan's upload made from phi on this host."""

        def upload(theta: np.ndarray, phi: np.ndarray) -> wire.WireArray:
            own = self.updates.pop(task.msg_id, None)
            if own is not None:
                return own
            plan = RoundPlan.from_config(task.fields_dict())
            return upload_array(task.arrays[0].name, theta, phi, self.spec, plan)

        return upload

    def for_task(self, task: WireMessage) -> Trainer:
        def train(
            theta: np.ndarray, plan: RoundPlan, stream: SampleStream, rng: np.random.Generator
        ) -> tuple[np.ndarray, float]:
            if plan.algorithm != "online":
                raise UsageError("the firmware runs online (TinyReptile) rounds only")
            # TinyMetaFed: the C head runs the local-only steps (recon-steps); the upload
            # (Top-P% int8 update, local layers left out) is made from its phi by the
            # round function on this host.
            audio = _audio_source(stream) if self.audio else None
            self.link.send(b"T", _task_bytes(task))
            for _ in range(plan.k):
                if audio is not None:
                    pcm, y = audio(1, rng)
                    body = _audio_bytes(self.spec, np.asarray(pcm)[0], np.asarray(y)[0])
                    self.link.send(b"A", body)
                    continue
                x, y = stream.sample(1, rng)
                self.link.send(b"S", _sample_bytes(self.spec, np.asarray(x)[0], np.asarray(y)[0]))
            kind, body = self.link.recv()
            if kind == b"E":
                raise UsageError(f"firmware refused the task: {body.decode('utf-8', 'replace')}")
            if kind != b"R":
                raise LinkError(f"unexpected frame {kind!r} from the firmware")
            reply = wire.decode_message(body)
            if reply.msg_id != task.msg_id or len(reply.arrays) != 1:
                raise LinkError("the firmware answered another task")
            array = reply.arrays[0]
            phi = array.to_float32().ravel()
            if array.indices is not None:  # the firmware's own sparse update: phi = theta + it
                self.updates[task.msg_id] = array
                phi = (np.asarray(theta, np.float32) + phi).astype(np.float32)
            config = task.fields_dict()
            where = (int(config[KEY_ROUND]), int(config[KEY_DEVICE_INDEX]))
            self.history.append((*where, theta.ravel().copy(), phi.copy()))
            return phi, float(reply.fields_dict()["loss"])

        return train


def _audio_source(stream: object) -> Callable[[int, np.random.Generator], tuple[Any, Any]]:
    """The stream's raw-audio sampler (``sample_audio``; a simulated fleet's stream wraps
    the device's task, which has it)."""
    for owner in (stream, getattr(stream, "task", None)):
        sampler = getattr(owner, "sample_audio", None)
        if callable(sampler):
            return cast(Callable[[int, np.random.Generator], tuple[Any, Any]], sampler)
    raise UsageError("the firmware takes raw audio, but this device's stream has none")


def _task_bytes(task: WireMessage) -> bytes:
    """The TRAIN task as the broker carried it (the firmware decodes the same bytes)."""
    return wire.encode_message(
        MessageType.TRAIN,
        round=task.round,
        msg_id=task.msg_id,
        device_id=task.device_id,
        fields=task.fields,
        arrays=task.arrays,
    )


def firmware_description(device_id: str, fleet: str, board: str) -> dict[str, object]:
    """The DEVICE DESCRIPTION (formats.md) of a board running this firmware."""
    from tinyfleet import __version__
    from tinyfleet.firmware.codegen import SUPPORTED_OPERATORS

    return {
        "device_id": device_id,
        "fleet": fleet,
        "protocol_version": wire.PROTOCOL_VERSION,
        **get_board(board).description_fields(),
        "firmware": {"name": "tinyfleet-fw", "version": __version__},
        "operators": sorted(SUPPORTED_OPERATORS),
    }
