"""heatq: low-bit integer hardware from small PyTorch networks."""


def convert(model, example_input, **kwargs):
    """The exact integer graph (:class:`heatq.ir.IntGraph`) of a user's ``nn.Module`` built from
    heatq's quantized layers, traced on ``example_input``; see docs/python-api.md."""
    from .interop.module_ir import convert_module

    return convert_module(model, example_input, **kwargs)
