"""Recurring payments: customers, templates, scheduled / threshold / debt subscriptions and their runs.

A customer is known to an agent (the bank) by the agent's own reference, and every channel of that
agent sees the same customer. A run is one charge of a subscription for one period: it is unique per
(subscription, period), so a crash at any point resumes the same run and never charges twice.
"""
