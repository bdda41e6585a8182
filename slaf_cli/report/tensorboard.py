"""TensorBoard records of a run: scalars, SLAF coefficients and curves, hparams."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from slaf_cli.nn.factory import slaf_modules
from slaf_cli.report.figures import activation_curve_figure

log = logging.getLogger(__name__)


class TensorBoardReporter:
    """Write one run's events into ``log_dir``.

    Step scalars use the optimizer step as x-axis; epoch scalars, coefficient
    histograms and activation-curve figures use the 1-based epoch. Figures cost
    about a tenth of a second per SLAF layer, so they are drawn every
    ``plot_every`` epochs and at the last epoch (``epochs``).
    """

    def __init__(
        self,
        log_dir: str | Path,
        plot_features: int = 4,
        plot_every: int = 1,
        epochs: int | None = None,
        purge_step: int | None = None,
    ) -> None:
        # purge_step hides events that an earlier, interrupted process wrote past it.
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.plot_features = plot_features
        self.plot_every = plot_every
        self.epochs = epochs

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def log_epoch(
        self, epoch: int, scalars: dict[str, float], model: nn.Module
    ) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, epoch)
        for name, module in slaf_modules(model):
            self.writer.add_histogram(
                f"slaf/{name}/coefficients", module.coefficients.detach().cpu(), epoch
            )
            if self._plots_at(epoch):
                figure = activation_curve_figure(name, module, self.plot_features)
                self.writer.add_figure(f"slaf/{name}/curve", figure, epoch, close=True)
        self.writer.flush()

    def _plots_at(self, epoch: int) -> bool:
        if self.plot_features <= 0:
            return False
        return epoch % self.plot_every == 0 or epoch == self.epochs

    def log_hparams(self, params: dict[str, object], metrics: dict[str, float]) -> None:
        """Record the run for the HPARAMS dashboard, in this run's own event file.

        ``metrics`` are also written as ``hparam/<key>`` scalars, which the plugin
        reads as the final values of the run.
        """
        clean = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in params.items()
        }
        tags = {f"hparam/{k}": v for k, v in metrics.items()}
        experiment, session_start, session_end = hparams(clean, tags)
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        for tag, value in tags.items():
            self.writer.add_scalar(tag, value)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
