"""tinyfleet.device."""
