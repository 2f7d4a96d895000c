"""mahendran."""
