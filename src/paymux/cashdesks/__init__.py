"""Cash desks: desks and cashiers, cash days, cashier and system operations, redeem requests."""
