"""What the MQTT gateway raises when a task does not produce a usable reply."""

from __future__ import annotations

from tinyfleet.errors import TinyfleetError


class GatewayError(TinyfleetError):
    """A task did not produce a usable reply."""


class GatewayTimeout(GatewayError):
    """No reply within the round timeout (after all retries)."""


class DeviceDroppedError(GatewayError):
    """The device went offline (Last Will) while it had the task, or before."""


class DeviceReportedError(GatewayError):
    """The device answered with an ERROR message."""

    def __init__(self, device_id: str, code: int, reason: str) -> None:
        super().__init__(f"device {device_id} failed the task (code {code}): {reason}")
        self.code = code


class InvalidReplyError(GatewayError):
    """The reply's arrays do not match the task (names, shapes) or are not finite."""
