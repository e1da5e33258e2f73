"""Customer support: clients' codewords, tickets with messages, attachments and SLA timers."""
