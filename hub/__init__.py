"""Diaolou hub: ingest, devices, users and roles, web UI, clip pulls (arrives with the MQTT issue)."""

__version__ = "0.1.0"
