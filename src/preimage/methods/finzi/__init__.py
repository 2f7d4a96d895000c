"""finzi."""
