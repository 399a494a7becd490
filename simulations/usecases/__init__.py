"""Built-in use cases; importing this package registers them."""

from tinyfleet.simulations.usecases import characters, digits, kws, presence, sine

__all__ = ["characters", "digits", "kws", "presence", "sine"]
