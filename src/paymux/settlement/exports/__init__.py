"""Payment order files for the bank: ISO 20022 pain.001.001.03 and 1CClientBankExchange."""
