"""Router statistics as flat scalars for the Trainer's logs (console, TensorBoard, W&B...).

Keys (each is defined in :mod:`samora.analysis.usage`):

- ``router/load_entropy``: mean over routed layers of the normalised load entropy (1 = balanced,
  0 = one expert takes everything); ``router/load_entropy_min``: the lowest layer.
- ``router/max_expert_share``: the largest share any one expert takes in any layer (near 1 =
  collapse).
- ``router/usage/<task>/expert_<e>``: expert e's mean share on the task's tokens, averaged over
  layers (logged when the method has at most ``MAX_EXPERTS_LOGGED`` experts).
- ``gate/<task>``: the task gate g_task averaged over gated layers (SAMoRA).

The trainer adds ``aux/<term>`` (each weighted regulariser as it enters one step's loss, e.g.
``aux/orth`` = lambda_orth * L_orth), ``tokens_per_second`` (non-padding input tokens over all
processes per second since the previous log) and ``tokens_seen``. Router statistics come from the
batches of the optimizer step that ends at the logging step (one step's sample, so the cost is
paid only on logging steps); a task absent from those batches has no usage entry in that log.
"""

from __future__ import annotations

import torch

from samora.analysis.features import gate_values_of
from samora.analysis.usage import RouterUsage, load_entropy

MAX_EXPERTS_LOGGED = 16


def router_log_entries(usage: RouterUsage, handle) -> dict[str, float]:
    entries: dict[str, float] = {}
    load = usage.load()
    if load:
        entropies = [load_entropy(shares) for shares in load.values()]
        entries["router/load_entropy"] = sum(entropies) / len(entropies)
        entries["router/load_entropy_min"] = min(entropies)
        entries["router/max_expert_share"] = max(float(shares.max()) for shares in load.values())
        table = usage.usage()
        widths = {u.shape for u in table.values()}
        if len(widths) == 1 and next(iter(widths))[1] <= MAX_EXPERTS_LOGGED:
            mean = torch.stack(list(table.values())).mean(0)
            for index, group in enumerate(usage.groups):
                if not torch.isnan(mean[index]).any():
                    for expert, share in enumerate(mean[index].tolist()):
                        entries[f"router/usage/{group}/expert_{expert}"] = share
    gates = gate_values_of(handle)
    if gates:
        for task in next(iter(gates.values())):
            if task != "<unseen>":
                entries[f"gate/{task}"] = sum(g[task] for g in gates.values()) / len(gates)
    return entries
