"""Built-in use cases; importing this package registers them."""

from tinyfleet.simulations.usecases import digits, sine

__all__ = ["digits", "sine"]
