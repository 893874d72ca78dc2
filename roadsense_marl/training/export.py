"""Export a trained policy to a folder that loads without running code: weights (torch tensors) plus JSON.

``roadsense-marl export RUN_DIR --out DIR`` writes ``DIR/policy.pt`` (the policy's
``state_dict``, read back with ``torch.load(weights_only=True)``) and ``DIR/policy.json`` (env
contract, env config, policy options, spaces). ``roadsense-marl evaluate DIR`` accepts it.
Exporting reads the run's SB3 ``.zip`` (which unpickles): export only runs you trust; share
the exported folder instead of the ``.zip``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_DIR", help="training run folder (its final_model.zip, else its latest checkpoint) "
                        "or a model .zip saved by roadsense-marl train")
    parser.add_argument("--out", required=True, help="folder to write policy.pt and policy.json into (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace a policy exported to --out before")


def run(args: argparse.Namespace) -> int:
    from roadsense_marl.training.runs import export_policy

    out = export_policy(args.run, args.out, overwrite=args.overwrite)
    print(f"exported policy: {out}  (evaluate with: roadsense-marl evaluate {out})")
    return 0
