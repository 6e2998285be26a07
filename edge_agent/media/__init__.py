"""The box's side of the media channel (contract/media.py): sources of fMP4 and the channel."""
