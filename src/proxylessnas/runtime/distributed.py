"""Distributed search and training on one or many machines (torchrun, DistributedDataParallel).

A run started by ``torchrun`` (or ``proxyless search --nproc N``) finds ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment; :func:`distributed_session`
turns them into a process group (``nccl`` on GPUs, ``gloo`` on CPUs, with a timeout so that a
lost rank ends the job instead of hanging it) and a :class:`DistributedContext`, whose methods are
the few collective steps the search and training loops need:

- ``wrap(module)``: DistributedDataParallel over the weights (the architecture logits excluded);
- ``average_gradients_before_step(optimizer)``: the architecture optimiser steps on the gradient
  averaged over ranks, ``g = (1/W) sum_r g_r``, so that every rank holds identical alphas;
- ``check_identical(tensors)``: a hash compared across ranks (each epoch); a mismatch is an error;
- ``on_main(function)``: run on rank 0 only (every file write), the result or the error sent to all;
  ``held_on_main(manager)``: a context (the run folder's lock) held by rank 0 for a block;
- ``shard(batches)``: this rank's part of a :class:`~proxylessnas.data.BatchIterator` (in-memory
  or streamed);
- ``stop_signal(signal)``, ``average_numbers(sums)``: agreement on when to stop and what to log.

Without a torchrun environment (or with ``WORLD_SIZE=1``) the context is :data:`SINGLE_PROCESS`
and every method is the identity, so the loops read the same in both cases.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from proxylessnas.arguments import positive_int
from proxylessnas.errors import ProxylessError

Result = TypeVar("Result")
DEFAULT_TIMEOUT_SECONDS = 1800.0
# words of the messages gloo / nccl / the store raise when a peer died or stopped answering
LOST_PEER_WORDS = ("connection", "closed", "timed out", "timeout", "gloo", "nccl", "peer", "broken pipe",
                   "socket", "reset by")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job: rank r of W, and what it must do to stay in step."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # created by this session (and destroyed at its end)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- models and gradients --------------------------------------------------------------------
    def wrap(self, module: nn.Module, *, find_unused_parameters: bool = False,
             ignore: Sequence[nn.Parameter] = ()) -> nn.Module:
        """DistributedDataParallel around ``module`` (the module itself on one process).

        ``ignore``: parameters DDP must leave alone (the supernet's alphas, averaged by
        :meth:`average_gradients_before_step` instead). A supernet runs one sampled path per step,
        so it needs ``find_unused_parameters=True``; the path is the same on every rank because
        every rank draws it from an identically seeded generator.
        """
        if not self.enabled:
            return module
        if ignore:
            ignored = {id(p) for p in ignore}
            names = [name for name, p in module.named_parameters() if id(p) in ignored]
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
        device = next(module.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                                   find_unused_parameters=find_unused_parameters)

    def average_gradients_before_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Make ``optimizer.step()`` first replace every gradient by its mean over ranks (one
        all-reduce of the flattened gradients). Used for the architecture optimiser, whose
        loss is computed outside DDP: each rank's CE is the mean over its own validation batch,
        so the mean gradient is the gradient of the CE over the global batch, and the latency
        term, identical on every rank, is unchanged."""
        if not self.enabled:
            return

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            params = [p for group in opt.param_groups for p in group["params"]]
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat /= self.world_size
            offset = 0
            for p in params:
                size = p.numel()
                p.grad = flat[offset:offset + size].view_as(p).clone()
                offset += size

        optimizer.register_step_pre_hook(hook)

    def sync_batchnorm(self, module: nn.Module, enabled: bool) -> nn.Module:
        """SyncBatchNorm (statistics over the global batch) when ``enabled``; per-rank BatchNorm
        (each rank normalises with its own batch) otherwise, the default: cheaper, and enough
        when the per-rank batch has 32+ images."""
        if not (enabled and self.enabled):
            return module
        device = next(module.parameters()).device
        if device.type != "cuda":
            raise ProxylessError("SyncBatchNorm needs CUDA (PyTorch runs it on GPUs only)",
                                 "run.sync_batchnorm", "set run.sync_batchnorm=false on CPUs")
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)

    # -- agreement between ranks ---------------------------------------------------------------------
    def check_identical(self, tensors: Sequence[torch.Tensor], what: str, where: str) -> str:
        """SHA-256 of ``tensors`` (their exact bytes) on this rank, compared with every other rank;
        a difference raises :class:`ProxylessError` on every rank. Returns the hash."""
        digest = tensor_hash(tensors)
        if not self.enabled:
            return digest
        hashes: list[str | None] = [None] * self.world_size
        dist.all_gather_object(hashes, digest)
        if len(set(hashes)) > 1:
            differing = [r for r, h in enumerate(hashes) if h != hashes[0]]
            raise ProxylessError(f"{what} differ between ranks (rank 0 vs rank(s) "
                                 f"{', '.join(map(str, differing))})", where,
                                 "report this as a bug; resume from the last checkpoint with --resume")
        return digest

    def on_main(self, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """``function(*args, **kwargs)`` on rank 0 only (file writes, latency measurement), its
        result sent to every rank. A :class:`ProxylessError` raised on rank 0 is raised on every
        rank, so that no rank waits for a result that will never come."""
        if not self.enabled:
            return function(*args, **kwargs)
        payload: list[Any] = [None]
        if self.is_main:
            try:
                payload[0] = ("ok", function(*args, **kwargs))
            except ProxylessError as err:
                payload[0] = ("error", (err.what, err.where, err.fix))
            except BaseException as err:
                payload[0] = ("error", (f"rank 0 failed: {type(err).__name__}: {err}", "distributed run",
                                        "see rank 0's output"))
                dist.broadcast_object_list(payload, src=0, device=self._object_device())
                raise
        dist.broadcast_object_list(payload, src=0, device=self._object_device())
        status, value = payload[0]
        if status == "error":
            raise ProxylessError(*value)
        return value

    @contextlib.contextmanager
    def held_on_main(self, manager: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[None]:
        """``manager()`` entered on rank 0 only, for the block (the run folder's lock: rank 0 is the
        one writer); an error entering it is raised on every rank, as with :meth:`on_main`."""
        with contextlib.ExitStack() as stack:
            def enter() -> None:
                stack.enter_context(manager())

            self.on_main(enter)
            yield

    def load_from_main(self, stateful: Any) -> None:
        """Give every other rank the state of rank 0's ``stateful`` (``state_dict`` /
        ``load_state_dict``), e.g. a latency target calibrated on rank 0 alone."""
        state = self.on_main(stateful.state_dict)
        if not self.is_main:
            stateful.load_state_dict(state)

    def stop_signal(self, local: int | None) -> int | None:
        """The signal any rank received (its number), or None: all ranks stop at the same step."""
        if not self.enabled:
            return local
        flag = torch.tensor([local or 0], dtype=torch.int64, device=self._object_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def average_numbers(self, values: dict[str, float]) -> dict[str, float]:
        """Each number averaged over ranks (sums of losses, counts: ratios of them stay exact)."""
        if not self.enabled or not values:
            return dict(values)
        keys = sorted(values)
        numbers = torch.tensor([float(values[k] or 0.0) for k in keys], dtype=torch.float64,
                               device=self._object_device())
        dist.all_reduce(numbers, op=dist.ReduceOp.SUM)
        numbers /= self.world_size
        return dict(zip(keys, numbers.tolist()))

    def average_attribute(self, owner: Any, name: str) -> None:
        """``owner.name`` (a float, or None everywhere) replaced by its mean over ranks."""
        value = getattr(owner, name, None)
        if not self.enabled or value is None:
            return
        setattr(owner, name, self.average_numbers({name: value})[name])

    # -- data ----------------------------------------------------------------------------------------
    def shard(self, batches: Any) -> Any:
        """This rank's part of ``batches``, a :class:`~proxylessnas.data.BatchIterator` (see
        :class:`~proxylessnas.data.iterator.ShardedBatchIterator`)."""
        if not self.enabled:
            return batches
        return batches.shard(self.rank, self.world_size)

    def _object_device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE_PROCESS = DistributedContext()


def tensor_hash(tensors: Sequence[torch.Tensor]) -> str:
    """SHA-256 over the exact bytes (and shapes) of ``tensors``."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# -- process group ---------------------------------------------------------------------------------

def launched_world_size() -> int:
    """WORLD_SIZE from torchrun's environment (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ProxylessError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number", "environment",
                             "launch with torchrun, or unset WORLD_SIZE") from None


def launched_rank() -> int:
    """RANK from torchrun's environment (0 when not launched by it)."""
    return int(os.environ.get("RANK", "0") or 0)


def choose_backend(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, context: DistributedContext) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA (one GPU per process), else ``device``."""
    if context.enabled and device.type == "cuda":
        if context.local_rank >= torch.cuda.device_count():
            raise ProxylessError(f"local rank {context.local_rank} but {torch.cuda.device_count()} GPU(s)",
                                 "torchrun --nproc-per-node", "start at most one process per GPU")
        torch.cuda.set_device(context.local_rank)
        return torch.device("cuda", context.local_rank)
    return device


def init_distributed(device: torch.device, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
                     ) -> DistributedContext:
    """A context from torchrun's environment: joins (or, if the caller already has one, reuses)
    the default process group. ``timeout_seconds`` bounds every collective: a rank that died or
    hangs ends the others after at most that long (gloo notices a closed connection at once)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(),
                                  int(os.environ.get("LOCAL_RANK", dist.get_rank())), dist.get_backend())
    world_size = launched_world_size()
    if world_size <= 1:
        return SINGLE_PROCESS
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ProxylessError(f"WORLD_SIZE={world_size} but {', '.join(missing)} unset", "environment",
                             "launch with torchrun (or proxyless ... --nproc N)")
    backend = choose_backend(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds),
                                rank=rank, world_size=world_size)
    except (RuntimeError, ValueError) as err:
        raise ProxylessError(f"could not join the process group ({str(err).splitlines()[0][:120]})",
                             f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
                             "check that every node uses the same --master-addr/--master-port "
                             "(or --rdzv-endpoint) and that the port is open") from None
    return DistributedContext(rank, world_size, local_rank, backend, owns_group=True)


def teardown(context: DistributedContext) -> None:
    """Destroy the process group this session created (leave a caller's group alone)."""
    if context.owns_group and dist.is_initialized():
        with contextlib.suppress(RuntimeError, ValueError):
            dist.destroy_process_group()


def is_lost_peer(error: BaseException) -> bool:
    """Whether ``error`` comes from a collective whose peer crashed or timed out."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(word in text for word in LOST_PEER_WORDS)


@contextlib.contextmanager
def distributed_session(device: torch.device,
                        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[DistributedContext]:
    """Join the job (if launched by torchrun), yield its context, leave it at the end.

    Errors become one clear line: a :class:`ProxylessError` names the rank that raised it; a rank
    whose collective failed because another rank died or stopped answering prints
    ``error: rank R lost contact with the other ranks ...`` and exits at once with code 2
    (``os._exit``: with a dead peer, tearing down the process group can abort the process), and
    torchrun stops the remaining ranks.
    """
    context = init_distributed(device, timeout_seconds)
    try:
        yield context
        if context.enabled and context.owns_group:
            # every rank reaches the end before any destroys the group: a rank that tore its gloo
            # connections down while a peer still used them made that peer abort at exit
            dist.barrier()
    except ProxylessError as err:
        if context.enabled and not err.where.startswith("rank "):
            raise ProxylessError(err.what, f"rank {context.rank}: {err.where}", err.fix) from None
        raise
    except Exception as err:
        if context.enabled and is_lost_peer(err):
            first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            error = ProxylessError(
                f"rank {context.rank} lost contact with the other ranks ({first})", "distributed run",
                "another rank crashed or hung (its error is above) or the timeout "
                f"({timeout_seconds:g} s) passed; fix it and rerun with --resume")
            # The process group cannot be torn down with a dead peer: gloo aborts the process
            # (SIGABRT) in teardown or at interpreter exit. Say the one line and leave at once.
            print(error.line(), file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(2)
        raise
    finally:
        teardown(context)


# -- the --nproc launcher ---------------------------------------------------------------------------

def add_launch_arguments(parser) -> None:
    """``--nproc N`` on a command that can run distributed."""
    parser.add_argument("--nproc", type=positive_int, metavar="N",
                        help="run N processes on this machine (torchrun --standalone --nproc-per-node N); "
                             "for several machines call torchrun yourself, see docs/distributed.md")


def strip_launch_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            kept.append(item)
    return kept


def launch_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command that reruns ``proxyless ARGV`` as ``nproc`` processes under torch.distributed.run."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "proxylessnas", *strip_launch_arguments(argv)]


def relaunch_if_requested(args, argv: Sequence[str] | None = None) -> int | None:
    """With ``--nproc N`` (and not already inside torchrun): rerun this command line (``argv``, else
    the one the CLI parsed into ``args.command_line``, else ``sys.argv``) as N processes and return
    their exit code; otherwise None (run in this process)."""
    nproc = getattr(args, "nproc", None)
    if nproc is None or launched_world_size() > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
        return None
    if nproc > 1 and (os.cpu_count() or 1) < nproc and not torch.cuda.is_available():
        print(f"note: {nproc} processes on {os.cpu_count()} CPU core(s); expect no speed-up", file=sys.stderr)
    if argv is None:
        argv = getattr(args, "command_line", None) or sys.argv[1:]
    command = launch_command(nproc, argv)
    environment = dict(os.environ)
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(command, env=environment)

