"""tinyfleet.firmware."""
