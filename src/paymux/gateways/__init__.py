"""Inbound gateways: the hub acting as a provider for payment systems (OSMP and later others)."""
