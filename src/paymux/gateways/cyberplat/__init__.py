"""Cyberplat-style signed protocol inbound: payment systems check, pay, ask status and cancel at the hub."""
