"""The shape table: one row per layer, as `python -m cnnexp.shapes` prints it (or as JSON).

Beside each layer's shapes and parameters: its receptive field (input pixels one output unit
sees) and jump (input pixels between neighbouring units), multiply-accumulates per image, and
the memory of its output per image. A kernel, stride, padding, rf or jump that differs between
the spatial axes prints per axis (`3×5`); one that does not, as one number, in 1, 2 or 3 axes
(the shapes beside it say how many). Transposed convolutions show the tutorial's view of them:
zeros inserted between the inputs, the equivalent padding p' and the extra a. A network far
costlier than its task's reference (cnn3, convae) gets a warning with the factor.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from cnnexp.arithmetic.geometry import HEIGHT, Layer, axes_text, total_macs, total_params


def _shape(shape) -> str:
    return "×".join(str(v) for v in shape)


def _padding(layer: Layer) -> str:
    if layer.padding is None:
        return ""
    if layer.padding in ("same", "valid") and not layer.symmetric:  # (before, after) of each axis, ";" between
        pairs = [f"{before},{after}" for before, after in dict.fromkeys(layer.pads)]
        return f"{layer.padding}({';'.join(pairs)})"
    if layer.padding == "same":
        return f"same({layer.pads[0][0]})"
    return axes_text(layer.padding)


def _kind(layer: Layer) -> str:
    extra = [f"d{axes_text(layer.dilation)}" if max(layer.axes("dilation"), default=1) > 1 else "", f"g{layer.groups}" if layer.groups > 1 and layer.kind == "conv" else ""]
    return " ".join([layer.kind, *filter(None, extra)])


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB" if n < 2**20 else f"{n / 2**20:,.1f} MB"


def note(layer: Layer) -> str:
    """The last column: a transposed convolution's direct view, or an odd pool's worked formula."""
    if layer.kind == "convT":
        zeros, (before, after), a = layer.zeros_padding_extra
        text = f"zeros {zeros}, p'={before}+{after}, a={a}"
        return text + (f", crop from {layer.crop[0]}" if layer.crop is not None else "")
    if layer.kind.endswith("pool") and layer.formula and _odd(layer):
        return layer.formula
    return ""


def format_table(layers: List[Layer]) -> str:
    header = ("layer", "kind", "k", "s", "p", "input", "", "output", "params", "rf", "jump", "MACs", "out mem", "")
    rows = [header]
    for layer in layers:
        has_params = layer.kind in ("conv", "linear", "convT") or layer.kind.endswith("norm")
        rows.append((
            layer.block, _kind(layer),
            "" if layer.kernel is None else axes_text(layer.kernel),
            "" if layer.stride is None else axes_text(layer.stride),
            _padding(layer),
            _shape(layer.in_shape), "→", _shape(layer.out_shape),
            f"{layer.params:,}" if has_params else "0" if layer.kind.endswith("pool") else "",
            "" if layer.rf is None else axes_text(layer.rf),
            "" if layer.jump is None else axes_text(layer.jump),
            f"{layer.macs:,}" if layer.macs else "",
            _kb(layer.memory),
            note(layer),
        ))
    memory = sum(layer.memory for layer in layers)
    rows.append(("total", "", "", "", "", "", "", "", f"{total_params(layers):,}", "", "",
                 f"{total_macs(layers):,}", _kb(memory), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {2, 3, 8, 9, 10, 11, 12}
    lines = []
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _listed(value):
    """A per-axis tuple as a JSON list; one value as itself."""
    return list(value) if isinstance(value, tuple) else value


def table_json(layers: List[Layer]) -> Dict:
    """The same rows for programs: one object per layer and a total."""
    rows = []
    for layer in layers:
        row = {"block": layer.block, "kind": layer.kind, "kernel": _listed(layer.kernel), "stride": _listed(layer.stride),
               "padding": _listed(layer.padding), "pads": [list(p) for p in layer.pads],
               "dilation": _listed(layer.dilation), "groups": layer.groups, "in_shape": list(layer.in_shape),
               "out_shape": list(layer.out_shape), "params": layer.params, "rf": _listed(layer.rf),
               "jump": _listed(layer.jump), "macs": layer.macs, "out_bytes": layer.memory}
        if layer.kind == "convT":
            zeros, padding, a = layer.zeros_padding_extra
            row.update(zeros_inserted=zeros, equivalent_padding=list(padding), extra=a)
        rows.append(row)
    total = {"params": total_params(layers), "macs": total_macs(layers), "out_bytes": sum(l.memory for l in layers)}
    return {"layers": rows, "total": total}


def _odd(layer: Layer) -> bool:
    """Show the worked formula where the result is not the obvious i/s."""
    h = HEIGHT[layer.dims]  # the axis the formula works
    i, o, stride = layer.in_shape[1 + h], layer.out_shape[1 + h], layer.axes("stride")[h]
    return stride is not None and i % stride != 0 or o * (stride or 1) != i


COSTLY = 10  # × the reference's parameters or MACs per image


def cost_warning(model, reference) -> Optional[str]:
    """One line when the network is COSTLY× its task's reference network (compose.reference_model)
    or more: parameters and MACs per image, each with its factor. None otherwise."""
    if reference is None:
        return None
    params, macs = total_params(model.layers), total_macs(model.layers)
    ref_params, ref_macs = total_params(reference.layers), total_macs(reference.layers)
    factors = params / max(ref_params, 1), macs / max(ref_macs, 1)
    if max(factors) < COSTLY:
        return None
    return (f"a costly network: {_millions(params)} parameters ({factors[0]:.1f}× the reference {reference.name}'s "
            f"{_millions(ref_params)}) and {_millions(macs)} MACs per image ({factors[1]:.1f}× its "
            f"{_millions(ref_macs)}): each training image costs about {factors[1]:.0f}× as much time")


def _millions(n: int) -> str:
    return f"{n / 1e6:,.1f} M" if n >= 1e5 else f"{n:,}"
