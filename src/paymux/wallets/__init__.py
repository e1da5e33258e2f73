"""E-money: issuers, customers, wallets, operations and limits on the double-entry ledger."""
