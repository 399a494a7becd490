"""Built-in use cases; importing this package registers them."""

from tinyfleet.simulations.usecases import digits, presence, sine

__all__ = ["digits", "presence", "sine"]
