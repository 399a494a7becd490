"""Built-in use cases; importing this package registers them."""
