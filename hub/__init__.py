"""Diaolou hub: MQTT ingest into SQLite, devices, and (next) the web UI, users and roles, clip pulls."""

__version__ = "0.1.0"
