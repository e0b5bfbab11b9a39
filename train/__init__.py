"""PyTorch training (edge-train): the methods of train/methods/, synthetic defects, the station's
rejects as training data, ONNX export with the inspection recipe, and evaluation (edge-eval)."""
