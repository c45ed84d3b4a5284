"""The shape table: one row per layer, as `python -m cnnexp.shapes` prints it."""

from __future__ import annotations

from typing import List

from cnnexp.models.geometry import Layer, total_params


def _shape(shape) -> str:
    return "×".join(str(v) for v in shape)


def _padding(layer: Layer) -> str:
    if layer.padding is None:
        return ""
    if layer.padding in ("same", "valid") and not layer.symmetric:
        (t, b), (l, r) = layer.pads
        return f"{layer.padding}({t},{b})" if (t, b) == (l, r) else f"{layer.padding}({t},{b};{l},{r})"
    if layer.padding == "same":
        return f"same({layer.pads[0][0]})"
    return str(layer.padding)


def format_table(layers: List[Layer]) -> str:
    header = ("layer", "kind", "k", "s", "p", "input", "", "output", "params", "")
    rows = [header]
    for layer in layers:
        note = ""
        if layer.kind == "convT" and (any(layer.output_padding) or layer.crop is not None):
            note = f"a={layer.output_padding[0]}" + (f", crop from {layer.crop[0]}" if layer.crop is not None else "")
        rows.append((
            layer.block, layer.kind,
            "" if layer.kernel is None else str(layer.kernel),
            "" if layer.stride is None else str(layer.stride),
            _padding(layer),
            _shape(layer.in_shape), "→", _shape(layer.out_shape),
            f"{layer.params:,}" if layer.kind in ("conv", "linear", "convT") else "0" if layer.kind.endswith("pool") else "",
            note or (layer.formula if layer.kind.endswith("pool") and layer.formula and _odd(layer) else ""),
        ))
    rows.append(("total", "", "", "", "", "", "", "", f"{total_params(layers):,}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {2, 3, 8}
    lines = []
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _odd(layer: Layer) -> bool:
    """Show the worked formula where the result is not the obvious i/s."""
    i, o = layer.in_shape[1], layer.out_shape[1]
    return layer.stride is not None and i % layer.stride != 0 or o * (layer.stride or 1) != i
