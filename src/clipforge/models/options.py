"""The device and precision choices, importable without torch (the CLI builds its options from them)."""

DEVICES = ("auto", "cpu", "cuda", "mps")
# int8 is ONNX Runtime's (an `onnx:` export); torch refuses it with a line saying so.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
