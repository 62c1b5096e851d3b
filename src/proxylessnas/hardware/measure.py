"""Timing one block or one network on a backend: torch eager (CPU or CUDA), TorchScript, or one of
the optional runtimes of :mod:`~proxylessnas.hardware.runtimes` (ONNX Runtime FP32 and INT8,
OpenVINO FP32 and INT8, ExecuTorch with XNNPACK).

A :class:`Backend` names where a table is measured; :func:`prepare_runner` turns a module into a
:class:`Runner` whose ``time_once()`` returns one latency in ms: ``time.perf_counter`` around the
call on CPU, CUDA events with synchronisation on a GPU. With one CPU thread the default clock
is the calling thread's CPU time (``time.thread_time``): the work is done on that thread, and
unlike wall time it does not count the time slices other processes take on a shared machine
(``clock="wall"`` measures wall time instead; with several threads wall time is always used).
:func:`measure_interleaved` times several runners in rounds (each round visits every runner
once, in shuffled order), so that load from other processes spreads over all of them instead
of biasing whichever ran during the spike.
Outliers (beyond 3 inter-quartile ranges from the quartiles) are dropped before the statistics.
"""

from __future__ import annotations

import contextlib
import platform
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import LayerKey, key_op
from proxylessnas.hardware.lut import LatencyStats, quantile
from proxylessnas.hardware.runtimes import RUNTIMES, compile_program, get_runtime, load_program, prepare_call
from proxylessnas.hardware.runtimes import export_onnx_bytes as export_onnx_bytes  # its old home
from proxylessnas.hardware.timed_weights import TIMED_BATCHNORM, trained_like_batchnorm
from proxylessnas.nets.op_registry import build_op
from proxylessnas.ops.blocks import Residual, init_weights
from proxylessnas.space.spec import BNSpec

BACKENDS = tuple(RUNTIMES)
DEVICES = ("cpu", "cuda")
TORCH_BACKENDS = ("torch", "torchscript")  # the only ones that run on a GPU here


@dataclass(frozen=True)
class Backend:
    """Where latency is measured: framework, device, batch size and CPU threads."""

    name: str = "torch"
    device: str = "cpu"
    batch_size: int = 1
    threads: int = 1
    clock: str = "auto"

    def __post_init__(self) -> None:
        if self.clock not in ("auto", "thread", "wall"):
            raise ProxylessError(f"unknown clock '{self.clock}'", "backend", "use auto, thread or wall")
        if self.clock == "thread" and (self.device != "cpu" or self.threads != 1):
            raise ProxylessError("the thread clock needs one CPU thread", "backend",
                                 "use --threads 1 or --clock wall")
        if self.name not in BACKENDS:
            raise ProxylessError(f"unknown backend '{self.name}'", "backend",
                                 f"use one of {', '.join(BACKENDS)}")
        if self.device not in DEVICES:
            raise ProxylessError(f"unknown device '{self.device}'", "backend",
                                 f"use one of {', '.join(DEVICES)}")
        if self.name not in TORCH_BACKENDS and self.device != "cpu":
            raise ProxylessError(f"the {self.name} backend measures on the CPU", "backend",
                                 "use --device cpu, or --backend torch --device cuda")
        if self.batch_size < 1 or self.threads < 1:
            raise ProxylessError("batch size and threads must be >= 1", "backend",
                                 "give --batch-size and --threads of at least 1")

    def check_available(self) -> None:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ProxylessError("CUDA is not available", "backend",
                                 "measure on a machine with a GPU, or use --device cpu")
        get_runtime(self.name).require()

    @property
    def resolved_clock(self) -> str:
        """``cuda`` (events), ``thread`` (CPU time of the calling thread) or ``wall``."""
        if self.device == "cuda":
            return "cuda"
        if self.clock == "auto":
            return "thread" if self.threads == 1 else "wall"
        return self.clock

    @property
    def label(self) -> str:
        """Short name for files and logs, e.g. ``torch-cpu-t1`` or ``onnxruntime-cpu-t2``."""
        return f"{self.name}-{self.device}" + (f"-t{self.threads}" if self.device == "cpu" else "")

    def provenance(self) -> dict[str, Any]:
        """What identifies a table measured here (CPU model or GPU name, runtime and its version,
        precision, batch size, threads: see ``hardware/identity.py``) and when it was measured."""
        runtime = get_runtime(self.name)
        info: dict[str, Any] = {
            "device": device_name(self.device), "backend": self.name,
            "backend_version": runtime.version(), "device_type": self.device,
            "dtype": runtime.dtype, "runtime_settings": dict(runtime.settings), "batch_size": self.batch_size,
            "threads": self.threads if self.device == "cpu" else None, "clock": self.resolved_clock,
            "torch_version": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "hostname": platform.node(),
            "timed_batchnorm": TIMED_BATCHNORM,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return info


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda (unavailable)"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def backend_version(name: str) -> str:
    """The installed version of a backend's runtime (``not installed`` when it is missing)."""
    return get_runtime(name).version()


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Fix torch's intra-op threads for the duration (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def build_block(key: LayerKey, bn_momentum: float = 0.1, bn_eps: float = 1e-3) -> nn.Module:
    """A standalone module computing exactly the block a key describes, in eval mode: the op
    registry's module of the key's op (:func:`~proxylessnas.hardware.keys.key_op`), behind the
    identity shortcut where the key has one, initialised as the paper's release (the values of
    the weights do not change a timing)."""
    (_, _, ic), (_, _, oc) = key.input, key.output
    module = build_op(key_op(key), ic, oc, key.stride, BNSpec(bn_momentum, bn_eps))
    if key.residual:
        module = Residual(module, True)
    init_weights(module)
    return module.eval()


def key_input_shape(key: LayerKey, batch_size: int) -> tuple[int, int, int, int]:
    h, w, c = key.input
    return (batch_size, c, h, w)


class Runner:
    """One prepared module on one backend; ``time_once()`` returns one latency in ms."""

    def __init__(self, call: Callable[[], Any], clock: str) -> None:
        self._call = call
        self._clock = clock
        self._timer = time.thread_time if clock == "thread" else time.perf_counter
        if clock == "cuda":
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def run(self) -> None:
        self._call()

    def time_once(self) -> float:
        if self._clock == "cuda":
            self._start.record()
            self._call()
            self._end.record()
            self._end.synchronize()
            return float(self._start.elapsed_time(self._end))
        start = self._timer()
        self._call()
        return (self._timer() - start) * 1e3


def example_input(input_shape: Sequence[int], seed: int) -> torch.Tensor:
    return torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))


def prepare_runner(module: nn.Module, input_shape: Sequence[int], backend: Backend,
                   seed: int = 0) -> Runner:
    """Make ``module`` ready to time on ``backend`` (eval mode, no autograd), with trained-like
    values in BatchNorm layers still at their initial ones (:mod:`~proxylessnas.hardware.timed_weights`)."""
    backend.check_available()
    module = trained_like_batchnorm(module.eval())
    example = example_input(input_shape, seed)
    if backend.name not in TORCH_BACKENDS:
        return Runner(prepare_call(backend.name, module, example, backend.threads), backend.resolved_clock)
    device = torch.device(backend.device)
    module = module.to(device)
    x = example.to(device)
    if backend.name == "torchscript":
        with torch.no_grad():
            module = torch.jit.freeze(torch.jit.trace(module, (x,)))

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return module(x)
    return Runner(call, backend.resolved_clock)


def compile_net(module: nn.Module, input_shape: Sequence[int], backend: Backend, seed: int = 0) -> bytes:
    """The program :func:`prepare_runner` would convert ``module`` to, as bytes (runtimes of
    :data:`~proxylessnas.hardware.runtimes.SERIALISED` only): it can be made in another process."""
    module = trained_like_batchnorm(module.eval())
    return compile_program(backend.name, module, example_input(input_shape, seed))


def runner_from_program(program: bytes, input_shape: Sequence[int], backend: Backend,
                        seed: int = 0) -> Runner:
    """The runner of a :func:`compile_net` program, with the same example input as :func:`prepare_runner`."""
    call = load_program(backend.name, program, example_input(input_shape, seed), backend.threads)
    return Runner(call, backend.resolved_clock)


def drop_outliers(samples: Sequence[float], iqr_factor: float = 3.0) -> list[float]:
    """Samples within [q25 - f * IQR, q75 + f * IQR] (Tukey's far-out fences)."""
    values = sorted(samples)
    if len(values) < 8:
        return values
    q25, q75 = quantile(values, 0.25), quantile(values, 0.75)
    spread = q75 - q25
    return [v for v in values if q25 - iqr_factor * spread <= v <= q75 + iqr_factor * spread]


def measure_interleaved(runners: Sequence[Runner], *, warmup: int = 10, rounds: int = 10,
                        per_round: int = 5, threads: int = 1, seed: int = 0) -> list[LatencyStats]:
    """Time every runner ``rounds * per_round`` times, round-robin in shuffled order."""
    order = list(range(len(runners)))
    samples: list[list[float]] = [[] for _ in runners]
    shuffle = random.Random(seed)
    with torch_threads(threads):
        for runner in runners:
            for _ in range(warmup):
                runner.run()
        for _ in range(rounds):
            shuffle.shuffle(order)
            for index in order:
                runner = runners[index]
                runner.run()  # re-warm caches after the previous runner
                samples[index].extend(runner.time_once() for _ in range(per_round))
    return [LatencyStats.from_samples(drop_outliers(s)) for s in samples]


def estimate_ms(runner: Runner, threads: int = 1, budget_s: float = 0.05) -> float:
    """A rough median latency from a short burst (used to choose repeat counts)."""
    times = []
    with torch_threads(threads):
        runner.run()
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 50):
            times.append(runner.time_once())
    return sorted(times)[len(times) // 2]
