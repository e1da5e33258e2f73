"""Identification of wallet customers (KYC): documents they upload and Compliance's review."""
