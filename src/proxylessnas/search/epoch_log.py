"""What an epoch of the search reports: its metrics.jsonl row (:func:`epoch_record`, from the
running sums of its steps), its log line (:func:`epoch_line`), and the progress over the run.

    train_loss = sum of weight losses / weight steps      train_acc = correct / images seen
    entropy    = sum_l H(p_l),  H(p) = -sum_j p_j ln p_j (nats)
    valid_acc  = accuracy of the argmax path on up to run.eval_batches validation batches
"""

from __future__ import annotations

from typing import Any

import torch

from proxylessnas.convergence_measures import argmax_changes, mean_max_probability, normalised_entropy
from proxylessnas.data import BatchIterator
from proxylessnas.search.build import SearchParts
from proxylessnas.search.strategies import batch_norms
from proxylessnas.supernet import DecisionSuperNet, batch_statistics_only


class Progress:
    """One progress over every weight step of the run (ETA for the whole search): a bar on a terminal,
    plain periodic lines in a log (:func:`proxylessnas.progress.progress_bar`)."""

    def __init__(self, total: int, done: int, enabled: bool, visible: bool = True) -> None:
        self.bar = None
        self.visible = visible  # False on ranks other than 0: they print nothing
        if enabled:
            from proxylessnas.progress import progress_bar

            self.bar = progress_bar(total, initial=done, desc="search", unit="step", leave=True)

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)

    def step(self, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.visible:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def new_sums() -> dict[str, float]:
    """The running sums of an epoch's steps (saved in the checkpoint: a resume continues them)."""
    return {"weight_loss": 0.0, "weight_correct": 0, "weight_seen": 0, "weight_steps": 0, "arch_steps": 0}


def entropy(probs: list[torch.Tensor]) -> float:
    """Sum over layers of H(p_l) = -sum_j p_lj ln p_lj (nats)."""
    return sum(float(-(p * torch.log(p.clamp_min(1e-30))).sum()) for p in probs)


@torch.no_grad()
def path_accuracy(supernet: DecisionSuperNet, indices: list[int], batches: BatchIterator,
                  max_batches: int) -> float:
    """Accuracy of one fixed path on up to ``max_batches`` batches (BN on batch statistics,
    running statistics untouched: they describe the mixture of paths, not this one)."""
    supernet.set_path(indices)
    correct = total = 0
    with batch_statistics_only(batch_norms(supernet)):
        for number, (images, labels) in enumerate(batches.epoch(0)):
            if number >= max_batches:
                break
            correct += int((supernet(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct / max(1, total)


def epoch_record(epoch: int, warming_up: bool, parts: SearchParts, sums: dict[str, float],
                 valid_eval: BatchIterator, eval_batches: int, lr: float,
                 previous_arch: dict[str, str] | None = None) -> dict:
    """One metrics.jsonl row (``epoch`` counts from 1, as in the log): losses, accuracies, latencies
    (table units), lambda, entropy, convergence (normalised entropy, mean max probability, argmax
    changes against ``previous_arch``, the row before's "arch"; 0 for the first epoch),
    probabilities; after a search epoch the controller's check of the argmax cost."""
    supernet, profile = parts.supernet, parts.profile
    probs = [p.detach().cpu().double() for p in supernet.probs()]
    argmax = [int(p.argmax()) for p in probs]
    arch_steps = max(1, sums["arch_steps"])
    layers = supernet.space.searched_layers
    row: dict[str, Any] = {
        "epoch": epoch + 1, "phase": "warmup" if warming_up else "search", "lr": lr,
        "train_loss": sums["weight_loss"] / max(1, sums["weight_steps"]),
        "train_acc": sums["weight_correct"] / max(1, sums["weight_seen"]),
        "arch_steps": int(sums["arch_steps"]),
        "expected_latency": float(profile.expected(probs)),
        "argmax_latency": profile.cost_of(argmax), "target_latency_table": parts.target.table,
        "latency_unit": profile.unit,
        "lambda": parts.latency.weight if parts.strategy.name == "gradient" else None,
        "entropy": entropy(probs),
        "normalised_entropy": normalised_entropy(probs), "mean_max_prob": mean_max_probability(probs),
        "valid_acc": path_accuracy(supernet, argmax, valid_eval, eval_batches),
        "probs": {layer.label: [round(float(v), 6) for v in p] for layer, p in zip(layers, probs)},
        "arch": {layer.label: layer.candidates[i].token for layer, i in zip(layers, argmax)},
    }
    row["argmax_changes"] = argmax_changes(previous_arch, row["arch"])
    for key, value in sums.items():
        if key.startswith("arch_") and key != "arch_steps":
            row[key] = value / arch_steps if sums["arch_steps"] else None
    accepted = None if warming_up else parts.latency.check_epoch(epoch, row["argmax_latency"])
    if accepted is not None:
        row["target_accepted"] = accepted
    return row


def epoch_line(row: dict[str, Any], unit: str) -> str:
    """The log line of an epoch's row (latencies in ``unit``, the cost model's)."""
    text = (f"epoch {row['epoch']} ({row['phase']}): train loss {row['train_loss']:.3f} "
            f"acc {row['train_acc']:.3f}, valid acc (argmax) {row['valid_acc']:.3f}, "
            f"E[lat] {row['expected_latency']:.4g} {unit}, argmax {row['argmax_latency']:.4g} {unit} "
            f"(target {row['target_latency_table']:.4g})")
    if row.get("lambda") is not None:
        text += f", lambda {row['lambda']:.3g}"
    text += f", entropy {row['entropy']:.3f}"
    if row.get("normalised_entropy") is not None:
        text += (f" (normalised {row['normalised_entropy']:.2f}), max p {row['mean_max_prob']:.2f}, "
                 f"argmax changes {row['argmax_changes']}")
    return text
