"""OSMP (the QIWI provider protocol) inbound: payment systems send check and pay to the hub."""
