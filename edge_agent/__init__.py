"""Diaolou edge agent: capture, ring-buffer recording, clips (and, next, detection and the MQTT link)."""

__version__ = "0.1.0"
