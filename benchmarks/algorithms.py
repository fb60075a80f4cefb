"""Whole training steps (or forward passes) of one network under each convolution algorithm, minivgg alone.

    python benchmarks/algorithms.py                       # the default run, VGG-A width 1 and its forward
    python benchmarks/algorithms.py --only D-w1 --rounds 20

``benchmarks/winograd.py`` times each layer apart; this times what a user
runs, the same network and batch as ``benchmarks/vs_pytorch.py``, with the
rounds of every variant alternated in one process:

* auto: the rule of ``minivgg.functions.conv.choose_algorithm``;
* im2col, winograd, winograd4: one algorithm forced for every layer it applies to;
* auto without taps: the rule as if 'taps' did not exist, maps of one 2x2
  tile going by the harmonic-mean rule like any other (the rule before
  'taps'), to show what 'taps' buys;
* auto without winograd4: the rule as it was before F(4x4, 3x3), F(2x2, 3x3)
  on every map larger than one 2x2 tile, to show what 'winograd4' buys.

"speed" is auto's median time over the variant's: below 1, auto is faster.
"""
import argparse
import contextlib
import os
import statistics
import time

import minivgg  # before NumPy (minivgg/__init__.py sets OpenBLAS's thread timeout)

from minivgg.functions import conv
from vs_pytorch import CONFIGS, PROCESSES, MinivggRunner, openblas_environment


@contextlib.contextmanager
def rule_without_taps():
    """The 'auto' rule as if no map fitted one tile: no layer goes to 'taps'."""
    fits = conv.fits_one_tile
    conv.fits_one_tile = lambda x_shape: False
    try:
        yield
    finally:
        conv.fits_one_tile = fits


@contextlib.contextmanager
def rule_without_winograd4():
    """The 'auto' rule before F(4x4, 3x3): F(2x2, 3x3) where 2CO/(C+O) reaches 160 (forward, training or
    not) or 64 (input gradient), on every map larger than one 2x2 tile."""
    rule = conv.winograd_rule

    def winograd_2x2_rule(x_shape, w_shape, part):
        c, o = x_shape[1], w_shape[0]
        return "winograd" if 2 * c * o >= (64 if part == "input_grad" else 160) * (c + o) else "im2col"
    conv.winograd_rule = winograd_2x2_rule
    try:
        yield
    finally:
        conv.winograd_rule = rule


VARIANTS = {
    "auto": lambda: conv.use_algorithm("auto"),
    "im2col": lambda: conv.use_algorithm("im2col"),
    "winograd": lambda: conv.use_algorithm("winograd"),
    "winograd4": lambda: conv.use_algorithm("winograd4"),
    "auto without taps": rule_without_taps,
    "auto without winograd4": rule_without_winograd4,
}


def time_variants(name, rounds, warmup):
    """{variant: [seconds per step]} for configuration ``name``, the variants alternated round by round."""
    runner = MinivggRunner(*CONFIGS[name])
    times = {variant: [] for variant in VARIANTS}
    for round_index in range(warmup + rounds):
        for variant, context in VARIANTS.items():
            with context():
                start = time.perf_counter()
                runner.step()
                elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[variant].append(elapsed)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[name for name in CONFIGS if name not in PROCESSES],
                        help="configurations (repeatable; one process each)")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args(argv)
    print(f"{openblas_environment()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"median ms over {args.rounds} alternated rounds after 2 warm-up; speed = auto's median over the variant's\n")
    print("| configuration | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for name in args.only or ["default", "A-w1", "A-w1-forward"]:
        medians = {v: statistics.median(t) for v, t in time_variants(name, args.rounds, warmup=2).items()}
        cells = [f"{medians[v] * 1e3:.1f} ({medians['auto'] / medians[v]:.2f}x)" for v in VARIANTS]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
