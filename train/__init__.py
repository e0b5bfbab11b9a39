"""PyTorch training, synthetic defects, ONNX export and evaluation (edge-train, edge-eval).

Not built yet: see the training issue. Nothing here is declared as a command.
"""
