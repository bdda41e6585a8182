"""``slaf-bench``: time ReLU and SLAF training steps and MNIST data paths side by side.

Prints the tables to stdout and rewrites the generated section of the Markdown file
given by ``--output`` (default docs/benchmarks.md beside the package).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

import torch

from slaf_cli.bench.report import describe_environment, update_markdown
from slaf_cli.bench.run import BenchOptions, format_markdown, format_text, run_benchmark

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_mnist_root() -> Path:
    """Return ``$SLAF_DATA_ROOT``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SLAF_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="slaf-bench",
        description="Time ReLU against naive and fast SLAF training steps (MLP and "
        "CNN) and MNIST data loading paths, in one process.",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (cuda when available); default auto",
    )
    parser.add_argument(
        "--steps", type=int, default=20, help="timed steps per variant (default 20)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed rounds first (default 3)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    parser.add_argument(
        "--degree", type=int, default=4, help="monomial SLAF degree (default 4)"
    )
    parser.add_argument("--mlp-batch", type=int, default=256, help="default 256")
    parser.add_argument("--cnn-batch", type=int, default=128, help="default 128")
    parser.add_argument(
        "--mnist-root",
        type=Path,
        default=default_mnist_root(),
        help="folder containing MNIST/raw (default $SLAF_DATA_ROOT or "
        "../shared/data beside the repository)",
    )
    parser.add_argument(
        "--epoch-batches",
        type=int,
        default=None,
        help="stop each MNIST epoch after this many batches (default: full epoch)",
    )
    parser.add_argument(
        "--no-epoch", action="store_true", help="skip the MNIST epoch benchmark"
    )
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the torch.compile-d SLAF variants (their first step compiles)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test sizes: batch 16, 1 warm-up round, 3 MNIST batches",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file whose generated section is rewritten (default "
        "docs/benchmarks.md, and none with --quick); pass an empty string to "
        "write none",
    )
    args = parser.parse_args(argv)
    for option in ("steps", "degree", "mlp_batch", "cnn_batch"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.output is None:
        # Smoke-test numbers must not replace the recorded full-size run.
        args.output = "" if args.quick else str(REPO_ROOT / "docs" / "benchmarks.md")
    return args


def resolve_device(name: str) -> torch.device:
    """Return the device for ``--device``; "auto" picks cuda when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested, but torch finds no CUDA device")
    return device


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print its tables and update the Markdown record."""
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s"
    )
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    environment = describe_environment(device)
    if args.quick:
        args.mlp_batch = args.cnn_batch = 16
        args.warmup = min(args.warmup, 1)
        args.epoch_batches = 3
    options = BenchOptions(
        device=device,
        steps=args.steps,
        warmup=args.warmup,
        degree=args.degree,
        mlp_batch=args.mlp_batch,
        cnn_batch=args.cnn_batch,
        mnist_root=None if args.no_epoch else args.mnist_root,
        epoch_batches=args.epoch_batches,
        compile=not args.no_compile,
    )
    logger.info(
        "slaf-bench on %s, %d torch threads, load average %s",
        environment.device,
        environment.threads,
        environment.load_average,
    )
    logger.info("native SLAF kernels: %s", environment.native_kernels)
    results = run_benchmark(options)
    print(format_text(results, judged=not args.quick))
    if args.output:
        arguments = sys.argv[1:] if argv is None else argv
        command = shlex.join(["slaf-bench", *arguments])
        markdown = format_markdown(
            results, environment, command, options, judged=not args.quick
        )
        update_markdown(Path(args.output), markdown)
        logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
