"""heatq: low-bit integer hardware from small PyTorch networks."""
