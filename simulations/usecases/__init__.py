"""Built-in use cases; importing this package registers them."""

from tinyfleet.simulations.usecases import digits, kws, sine

__all__ = ["digits", "kws", "sine"]
