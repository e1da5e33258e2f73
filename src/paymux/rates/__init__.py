"""Exchange rates: effective-dated, never overwritten, and exact conversion between currencies."""
