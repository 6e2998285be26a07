"""Motion detection: an ONNX graph the project builds itself (see models/motion_graph.py)."""
