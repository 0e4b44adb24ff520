"""Interop: networks from elsewhere into heatq's IR (QONNX / Brevitas import, a user's own
``nn.Module`` of heatq's quantized layers)."""
