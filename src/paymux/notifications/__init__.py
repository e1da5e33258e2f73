"""Notifications: notices of events to the agent's webhook and to customers by SMS and e-mail."""
