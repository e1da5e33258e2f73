"""ISO 8583 (1987) for ATMs and POS terminals: an inbound TCP channel and a terminal emulator."""
