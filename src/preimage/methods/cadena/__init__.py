"""cadena."""
