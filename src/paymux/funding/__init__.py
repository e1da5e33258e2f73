"""Funding sources: where the hub takes a payer's money from before it pays a provider (a bank's core
system debiting the customer's account for a recurring payment). See :mod:`paymux.funding.base`."""
