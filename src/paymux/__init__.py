"""paymux: an open-source payments hub."""

__version__ = "0.1.0"
