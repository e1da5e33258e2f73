"""Registers: per-provider templates, file formats, encryption, delivery and sending tasks."""
