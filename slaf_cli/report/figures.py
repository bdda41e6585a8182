"""Figures of learned activation curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from slaf_cli.nn.slaf import SLAF

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def activation_curve_figure(name: str, module: SLAF, max_features: int = 4) -> Figure:
    """Plot ``module``'s curve for its first ``max_features`` features.

    The x-axis spans the range the layer's inputs took in training (its
    ``input_min``/``input_max`` buffers), widened to [-1, 1] before any input was seen.
    """
    # Imported here: matplotlib adds about a second to every start-up otherwise.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low = float(module.input_min)
    high = float(module.input_max)
    if not (high > low) or not torch.isfinite(torch.tensor([low, high])).all():
        low, high = -1.0, 1.0
    grid = torch.linspace(low, high, 200, device=module.coefficients.device)
    features = list(range(min(max_features, module.coefficients.shape[0])))
    curves = module.curve(grid, features).detach().cpu()

    figure, axes = plt.subplots(figsize=(4.0, 3.0), dpi=80)
    for column, feature in enumerate(features):
        axes.plot(
            grid.cpu().numpy(), curves[:, column].numpy(), label=f"feature {feature}"
        )
    axes.set_title(name, fontsize=9)
    axes.set_xlabel("input z")
    axes.set_ylabel("f(z)")
    axes.grid(alpha=0.3)
    if len(features) > 1:
        axes.legend(fontsize=7)
    figure.tight_layout()
    return figure
