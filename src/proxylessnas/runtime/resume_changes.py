"""Resuming with changed settings (search and train).

A resume may change the settings that do not change the run's shape (learning rates, momentum,
weight decay, gradient clipping, ...: each config names its own ``RESUMABLE_FIELDS``); every
such change is recorded in the run's config history, saved in its checkpoints. Any other change
(space, dataset, batch size, epochs, seed, ...) is refused. The optimisers keep their saved state
(momentum buffers, Adam moments) under the new hyper-parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.stopping import resume_command

Changes = dict[str, dict[str, Any]]  # key -> {"from": saved value, "to": new value}


def accept_changes(saved: Mapping[str, Any], wanted: Mapping[str, Any], resumable: Collection[str],
                   where: str) -> Changes:
    """The changed keys of two flat settings dicts; a :class:`ProxylessError` naming the changed
    keys that are not in ``resumable``."""
    changed = sorted(key for key in {*saved, *wanted} if saved.get(key) != wanted.get(key))
    refused = [key for key in changed if key not in resumable]
    if refused:
        raise ProxylessError(f"settings differ from the run being resumed ({', '.join(refused)}) and would "
                             "change its shape", where,
                             "resume with the run's own values for these, or start a new --out (a resume "
                             f"may change only {', '.join(sorted(resumable))})")
    return {key: {"from": saved.get(key), "to": wanted.get(key)} for key in changed}


def record_changes(history: list[dict[str, Any]], changes: Changes, epoch: int,
                   step: int) -> list[dict[str, Any]]:
    """``history`` plus one entry for ``changes`` (unchanged when there are none): ``epoch`` is the
    first epoch run with the new values, counted from 1, ``step`` its steps already done before."""
    if not changes:
        return list(history)
    entry = {"epoch": epoch + 1, "step": step, "changed": changes,
             "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return [*history, entry]


def describe_changes(changes: Changes) -> str:
    """``weights.lr 0.025 -> 0.0125, arch.lr 0.001 -> 0.0005``."""
    return ", ".join(f"{key} {change['from']} -> {change['to']}" for key, change in changes.items())


def lower_rate_advice(command: str, out: str | Path, kept: str | None, rates: Mapping[str, float]) -> str:
    """After a NaN: what is kept and exactly what to type, with each learning rate of ``rates``
    (key -> value now) halved: a resume from ``kept`` (a checkpoint), or a fresh run without one."""
    lower = [f"{key}={value / 2:g}" for key, value in rates.items()]
    if kept is None:
        return ("no checkpoint was written yet; lower the learning rate: rerun the same command with "
                + " ".join(lower))
    return (f"the last good checkpoint ({kept}) is kept; lower the learning rate and resume: "
            f"{resume_command(command, out, *lower)}")


@contextlib.contextmanager
def keeping_hyperparameters(*optimizers: torch.optim.Optimizer) -> Iterator[None]:
    """Load optimiser states inside the block; afterwards each optimiser has its own (this run's)
    hyper-parameters again, ``load_state_dict`` having put back the saved ones."""
    own = [[{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
           for optimizer in optimizers]
    yield
    for optimizer, groups in zip(optimizers, own):
        for group, values in zip(optimizer.param_groups, groups):
            group.update(values)
