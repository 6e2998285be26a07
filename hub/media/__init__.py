"""The hub's side of the media channel (contract/media.py): sessions, fan-out to viewers."""
