"""Tracking: person ids across frames, zones, arming schedules."""
