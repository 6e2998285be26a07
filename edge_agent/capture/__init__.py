"""Capture: open camera streams (RTSP, files, V4L2) with PyAV, reconnect, timestamp, hand out packets and frames."""
