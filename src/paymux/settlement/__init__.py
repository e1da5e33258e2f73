"""Settlement with providers: prepaid deposits (balances, alerts, forecast) and postpaid debts
(statements, payment orders, pain.001 / 1C exports, bank statement import). See docs/settlement.md."""
