"""Invoice collection: billers send their invoices to the hub, which makes them payable and tells the
biller every status change (docs/invoices.md)."""
