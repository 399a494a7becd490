"""The root of tinyfleet's error hierarchy.

Every error a user can cause (bad input, bad configuration, a missing tool) derives from
:class:`TinyfleetError`; the CLI prints its message as one line and exits non-zero.
Subpackages define their own subclasses next to the code that raises them.
"""


class TinyfleetError(Exception):
    """An error with an actionable, one-line message for the user."""


class UsageError(TinyfleetError, ValueError):
    """An option or argument is invalid (unknown name, impossible size, ...)."""


class InputFileError(TinyfleetError):
    """A file given by the user is missing, unreadable or malformed."""


class MissingToolError(TinyfleetError):
    """An external program (mosquitto, arm-none-eabi-gcc, qemu) is not installed."""
