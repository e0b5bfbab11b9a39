"""Small ONNX graph edits before a build: fixing the input shape of a fully convolutional model."""

from __future__ import annotations

from edge.errors import InputError


def input_dims(model) -> list:
    """The first input's dims: ints where fixed, names (or None) where dynamic."""
    t = model.graph.input[0].type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def with_input_shape(model, batch: int | None, hw: tuple[int, int] | None, where: str):
    """Set the input to (batch, C, H, W) and let shape inference redo the rest. A fully
    convolutional model (ReNet-D, the U-Net) then runs whole frames instead of tiles; a model with a
    bottleneck of fixed size (the seed 001 autoencoder) fails here with the reason."""
    import onnx

    dims = input_dims(model)
    if len(dims) != 4:
        raise InputError(where, None, f"expected a 4-d image input (batch, channels, height, width), got {dims}")
    want = [batch or (dims[0] if isinstance(dims[0], int) and dims[0] > 0 else 1), dims[1],
            *(hw if hw else dims[2:])]
    if not all(isinstance(v, int) and v > 0 for v in want):
        raise InputError(where, None, f"input {dims} has a dynamic size: give --shape HxW (and --batch N)")
    if want == dims:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    shape = m.graph.input[0].type.tensor_type.shape
    for d, v in zip(shape.dim, want):
        d.Clear()
        d.dim_value = v
    del m.graph.value_info[:]
    for out in m.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.Clear()
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    except Exception as e:
        raise InputError(where, "--shape", f"the model does not accept input {want}: "
                                           f"{str(e).splitlines()[0][:200]}") from None
    return m
