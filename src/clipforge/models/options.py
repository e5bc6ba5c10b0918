"""The device and precision choices, importable without torch (the CLI builds its options from them)."""

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
