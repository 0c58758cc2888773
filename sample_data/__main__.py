"""`python -m sample_data --out DIR [--frames N] [--seed S] [--val-fraction F]`: write the synthetic sample."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sample_data
from sample_data.dataset import DEFAULT_FRAMES, generate_dataset


def main(argv: list[str] | None = None) -> None:
    # The package docstring's first paragraph is the one-line description of what gets written.
    description = (sample_data.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m sample_data", description=description)
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder to write the dataset to")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    args = parser.parse_args(argv)
    try:
        generate_dataset(args.out, args.frames, args.seed, args.val_fraction)
    except (FileExistsError, ValueError) as error:
        # Expected refusals (existing folder, bad argument) get one line, not a traceback.
        print(f"mmloop sample_data: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
