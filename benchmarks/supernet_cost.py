"""Memory and time of supernet steps against the standalone child network, on CPU.

Every row runs in a fresh process (peak memory is a per-process high-water mark):

- ``child``: the training step of the standalone net of the path (the physical limit);
- ``binary/weight``: sample one path, forward/backward it, SGD step;
- ``binary/full|full_v2|two``: architecture step (sample, forward, backward to the alphas only,
  Adam step, ``finish_arch_step``);
- ``darts|gumbel/weight|arch``: the weighted-sum baselines.

``--space`` picks the search space (default ``proxyless-imagenet``, the paper's chain); a graph
space such as ``nasbench201`` (6 decisions shared by 90 edges) is measured the same way, with its
own image channels, classes and resolution. The path is fixed so that every method runs the same
child: its logits are set to +30 on one candidate per decision (per searched layer of a chain;
sampling still runs, p is ~1 on that candidate; in mode ``two`` the second member of the pair is
then uniform among the others). ``peak_mem_mb`` is the growth of the
process's peak resident memory (VmHWM, reset after the model and optimiser are built) over the
measured steps: activations, gradients, optimiser state, allocator slack. ``saved_mb`` is the
size of the tensors autograd saved for backward in one step (allocator-independent).
``median_step_s`` is the median wall time of a step, ``median_cpu_s`` its median process CPU
time (all threads; less sensitive to other processes on a shared machine); ``child_ratio`` and
``child_cpu_ratio`` are the medians of per-step ratios against the child's step, measured
alternately in the same process, after the memory measurement. The sweep over the number of
candidates per layer (MBConv candidates) only exists for chain spaces.

    python benchmarks/supernet_cost.py [--quick] [--out benchmarks/results/supernet_cost.json]
    python benchmarks/supernet_cost.py --space nasbench201   # -> supernet_cost_nasbench201.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SWEEP_OPS = ("mb_k5_e3", "mb_k3_e3", "mb_k7_e3", "mb_k3_e6", "mb_k5_e6", "mb_k7_e6", "mb_k9_e3",
             "mb_k9_e6", "mb_k3_e4", "mb_k5_e4", "mb_k7_e4", "mb_k9_e4")
METHODS = (("child", "-"), ("binary", "weight"), ("binary", "full"), ("binary", "full_v2"),
           ("binary", "two"), ("darts", "weight"), ("darts", "arch"), ("gumbel", "weight"),
           ("gumbel", "arch"))
SWEEP_METHODS = (("binary", "weight"), ("binary", "full_v2"), ("binary", "two"), ("darts", "arch"))
DEFAULT_SPACE = "proxyless-imagenet"
# Main-table sizes (resolution, batch) per space, full and --quick; other spaces: their own
# resolution at batch 64 (--quick: 8). The sweep runs at the first full (or quick) size.
SIZES = {"proxyless-imagenet": ([(64, 32), (224, 8)], [(64, 8)])}


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build_space(spec: dict):
    """The space of a row: the preset at the row's resolution (the sweep's rows: N candidates)."""
    from proxylessnas import get_space

    overrides = {"resolution": spec["resolution"]}
    if spec["n_candidates"] is not None:
        overrides["candidates"] = list(SWEEP_OPS[: spec["n_candidates"] - 1])
    return get_space(spec["space"], **overrides)


def fixed_path(space, n_candidates: int | None) -> list[int]:
    """One candidate index per decision: drawn uniformly with a fixed seed, or (sweep) the same
    op everywhere, so that the child is the same for every N."""
    import torch

    if n_candidates is not None:
        return [0] * len(space.decisions)
    generator = torch.Generator().manual_seed(0)
    return [int(torch.randint(len(d.candidates), (1,), generator=generator)) for d in space.decisions]


def run_worker(spec: dict) -> dict:
    import torch
    from torch import nn

    from proxylessnas import Arch, build_net
    from proxylessnas.supernet import build_supernet

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    space = build_space(spec)
    num_classes = space.head.num_classes
    path = fixed_path(space, spec["n_candidates"])
    arch = Arch.from_ops(space, [d.candidates[i] for d, i in zip(space.decisions, path)])
    images = torch.randn(spec["batch"], space.in_chs, spec["resolution"], spec["resolution"])
    labels = torch.randint(0, num_classes, (spec["batch"],))
    generator = torch.Generator().manual_seed(1)

    def sgd(params):
        return torch.optim.SGD(params, lr=0.025, momentum=0.9, nesterov=True, weight_decay=4e-5)

    def child_step_fn(net, optimizer):
        def step():
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(images), labels).backward()
            optimizer.step()
        return step

    method, mode = spec["method"], spec["mode"]
    if method == "child":
        net = build_net(space, arch)
        step = child_step_fn(net, sgd(net.parameters()))
    else:
        supernet = build_supernet(space, num_classes, mixed_op=method)
        with torch.no_grad():
            for alpha, index in zip(supernet.arch_parameters(), path):
                alpha.zero_()
                alpha[index] = 30.0
        weight_optimizer = sgd(supernet.weight_parameters())
        arch_optimizer = torch.optim.Adam(supernet.arch_parameters(), lr=1e-3, betas=(0.0, 0.999))
        alphas = supernet.arch_parameters()
        if mode == "weight":
            def step():
                supernet.sample_weight_step(generator)
                weight_optimizer.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(supernet(images), labels).backward()
                weight_optimizer.step()
        else:
            arch_mode = "full" if method != "binary" else mode

            def step():
                supernet.sample_arch_step(arch_mode, generator)
                arch_optimizer.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(supernet(images), labels).backward(inputs=alphas)
                arch_optimizer.step()
                supernet.finish_arch_step()

    # Memory: first steps only, peak reset after everything is built; the tensors autograd
    # saves are recorded during the last of them.
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    Path("/proc/self/clear_refs").write_text("5")
    base_kb = memory_kb("VmRSS")
    for index in range(spec["memory_steps"]):
        if index == spec["memory_steps"] - 1:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                step()
        else:
            step()
    peak_mb = (memory_kb("VmHWM") - base_kb) / 1024
    saved_mb = sum(saved.values()) / 2**20

    # Time: alternate with the child's step in the same process.
    child = build_net(space, arch)
    child_step = child_step_fn(child, sgd(child.parameters()))
    child_step()
    times, ratios, cpu_times, cpu_ratios = [], [], [], []
    for _ in range(spec["time_steps"]):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        start, start_cpu = time.perf_counter(), time.process_time()
        child_step()
        reference, reference_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        times.append(elapsed)
        ratios.append(elapsed / reference)
        cpu_times.append(elapsed_cpu)
        cpu_ratios.append(elapsed_cpu / reference_cpu)
    return {"space": spec["space"], "method": method, "mode": mode,
            "n_candidates": max(len(d.candidates) for d in space.decisions),
            "resolution": spec["resolution"], "batch": spec["batch"],
            "peak_mem_mb": round(peak_mb, 1), "saved_mb": round(saved_mb, 1),
            "median_step_s": round(statistics.median(times), 4),
            "child_ratio": round(statistics.median(ratios), 3),
            "median_cpu_s": round(statistics.median(cpu_times), 4),
            "child_cpu_ratio": round(statistics.median(cpu_ratios), 3)}


def run_row(spec: dict) -> dict:
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed for {spec}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    from proxylessnas.figures import new_figure, save_figure

    sweep = [r for r in rows if r.get("sweep")]
    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    for method, mode in SWEEP_METHODS:
        points = sorted((r["n_candidates"], r["peak_mem_mb"]) for r in sweep
                        if r["method"] == method and r["mode"] == mode)
        if points:
            ax.plot(*zip(*points), marker="o", label=f"{method} {mode}")
    child = [r["peak_mem_mb"] for r in sweep if r["method"] == "child"]
    if child:
        ax.axhline(child[0], color="black", linestyle="--", label="child (standalone)")
    if sweep:
        ax.set_title(f"peak memory vs candidates ({sweep[0]['resolution']}px, batch {sweep[0]['batch']})")
    ax.set_xlabel("candidates per layer N")
    ax.set_ylabel("peak memory growth of a step (MB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main() -> None:
    from proxylessnas import SearchSpace, get_space
    from proxylessnas.space import space_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=DEFAULT_SPACE, choices=space_names(),
                        help=f"search space preset (default {DEFAULT_SPACE}); a graph space such as "
                             "nasbench201 runs at its own resolution and classes, without the sweep")
    parser.add_argument("--quick", action="store_true", help="one size, a 3-point sweep, few steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="result file (default benchmarks/results/supernet_cost.json, "
                                      "supernet_cost_<space>.json for another space)")
    parser.add_argument("--sizes", help="main-table sizes as RESxBATCH,... (default: 64x32,224x8 for "
                                        "proxyless-imagenet, the space's resolution x 64 otherwise)")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="the sweep over the number of candidates N (default: on for a chain "
                             "space; a graph space has none)")
    parser.add_argument("--memory-steps", type=int, help="steps of the memory measurement "
                                                         "(default 2, --quick 1)")
    parser.add_argument("--time-steps", type=int, help="timed steps per row (default 5, --quick 2)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return
    for name in ("memory_steps", "time_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    space = get_space(args.space)
    if args.sweep is None:
        args.sweep = isinstance(space, SearchSpace)
    elif args.sweep and not isinstance(space, SearchSpace):
        parser.error(f"--sweep varies the MBConv candidates of every layer of a chain space; "
                     f"'{args.space}' is a graph space whose decisions keep their own candidates: "
                     "drop --sweep (the main table is measured without it)")
    full_sizes, quick_sizes = SIZES.get(args.space, ([(space.resolution, 64)], [(space.resolution, 8)]))
    if args.quick:
        sizes, sweep_ns, memory_steps, time_steps = quick_sizes, (2, 13), 1, 2
    else:
        sizes, sweep_ns, memory_steps, time_steps = full_sizes, (2, 3, 5, 7, 9, 11, 13), 2, 5
    sweep_size = sizes[0]
    memory_steps = args.memory_steps or memory_steps
    time_steps = args.time_steps or time_steps
    if args.sizes:
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    if not args.sweep:
        sweep_ns = ()
    out = Path(args.out) if args.out else RESULTS / (
        "supernet_cost.json" if args.space == DEFAULT_SPACE else f"supernet_cost_{args.space}.json")
    base = {"space": args.space, "threads": args.threads, "memory_steps": memory_steps,
            "time_steps": time_steps}
    rows = []
    started = time.time()
    jobs = [dict(base, resolution=r, batch=b, n_candidates=None, method=m, mode=mode)
            for r, b in sizes for m, mode in METHODS]
    if sweep_ns:
        jobs.append(dict(base, resolution=sweep_size[0], batch=sweep_size[1], n_candidates=2,
                         method="child", mode="-", sweep=True))
    jobs += [dict(base, resolution=sweep_size[0], batch=sweep_size[1], n_candidates=n, method=m,
                  mode=mode, sweep=True, time_steps=1) for n in sweep_ns for m, mode in SWEEP_METHODS]
    for job in jobs:
        row = run_row(job)
        row["sweep"] = bool(job.get("sweep"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    import torch

    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "python": platform.python_version(), "torch": torch.__version__,
               "threads": args.threads, "cpu_count": os.cpu_count(),
               "load_average_at_end": os.getloadavg(), "quick": args.quick,
               "memory_steps": memory_steps, "time_steps": time_steps,
               "wall_s": round(time.time() - started, 1)}
    # The main table's child (the same path at every size) and its step-time ratios, by size.
    child_ops = [d.candidates[i].token for d, i in zip(space.decisions, fixed_path(space, None))]
    ratios: dict[str, dict[str, float]] = {}
    for r in rows:
        if not r["sweep"] and r["method"] != "child":
            ratios.setdefault(f"{r['resolution']}x{r['batch']}", {})[f"{r['method']}/{r['mode']}"] = \
                r["child_ratio"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"space": args.space, "num_classes": space.head.num_classes,
                               "in_chs": space.in_chs, "decisions": len(space.decisions),
                               "child_ops": child_ops, "child_ratio_by_size": ratios,
                               "rows": rows, "machine": machine}, indent=1) + "\n")
    if any(r["sweep"] for r in rows):
        plot(rows, out.with_suffix(".png"))
        print(f"wrote {out} and {out.with_suffix('.png')} in {machine['wall_s']} s")
    else:
        print(f"wrote {out} in {machine['wall_s']} s (no sweep, no plot)")


if __name__ == "__main__":
    main()
