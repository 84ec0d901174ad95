"""CPU time of one SASRec training step at a large catalog: sampled softmax with a sparse item table
(model.sparse_items), sampled softmax, full CE (docs/scale.md).

One thread, the model's YAML settings (hidden 64, 2 blocks, 256 uniform negatives), its own optimizer
(configure_optimizers), batch 128 with 21 real positions per row, the 50x synthetic catalog's 209,936 items by default:

    OMP_NUM_THREADS=1 python -m benchmarks.scale.sampled_step --items 209936
"""
from __future__ import annotations

import argparse
import time

import torch

from tests.models.factory import make_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=209_936)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(1)
    for loss, sparse in [("sampled", True), ("sampled", False), ("ce", False)]:
        torch.manual_seed(0)
        model = make_model("sasrec", loss=loss, sparse_items=sparse)
        model.n_items = args.items
        model.build(args.items)
        model.item_table().sparse = sparse
        model.train()
        optimizer = model.configure_optimizers()
        tokens = torch.randint(1, args.items + 1, (128, 51))
        tokens[:, :30] = 0
        parts = {"loss": 0.0, "backward": 0.0, "optimizer": 0.0}
        for step in range(args.steps + 1):  # the first step warms up and is not counted
            t0 = time.process_time()
            loss_value = model.training_loss(tokens)
            t1 = time.process_time()
            optimizer.zero_grad()
            loss_value.backward()
            t2 = time.process_time()
            optimizer.step()
            t3 = time.process_time()
            if step:
                parts["loss"] += t1 - t0
                parts["backward"] += t2 - t1
                parts["optimizer"] += t3 - t2
        per_step = {k: round(v / args.steps, 3) for k, v in parts.items()}
        print(f"loss={loss} sparse_items={sparse}: CPU s per step {sum(per_step.values()):.3f} {per_step}")


if __name__ == "__main__":
    main()
