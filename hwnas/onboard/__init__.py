"""Code that runs ON the board: numpy + onnxruntime + the standard library only.

Copied into every bundle as ``hwnas_device/`` next to ``run.py`` (see
:func:`hwnas.profiling.bundle.write_runner`); nothing here may import other ``hwnas`` modules.
``bench`` times one ONNX model and describes the machine; ``runner`` runs a bundle;
``weights`` writes the generated weights of graph-only models; ``conditions`` reads the
clock, temperature, throttling and load around each chunk.
"""
