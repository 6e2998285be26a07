"""Person detectors: ONNX models through onnxruntime, with decoders per model family."""
