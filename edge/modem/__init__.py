"""The ultrasonic modem: code scheme, frame codec, synthesis and the streaming detector.

Kept import-light: ``edge.modem.codes`` is pure Python so the hub can verify codes
without loading NumPy or the compiled kernels.
"""
