"""Search throughput with 1 and 2 processes (DDP, gloo) on this machine.

    python benchmarks/ddp_throughput.py [--steps 30] [--space proxyless-cifar] [--batch-size 32]

Runs the real search loop (``run_search``: weight steps plus an architecture step every
``arch.update_every``) on synthetic 32x32 data (proxyless-cifar space by default), first as
one process, then as two processes under ``torch.distributed.run``, one thread (one core)
per process; also one process with two threads, the other way of using both cores. Reports
the median wall time of a search step (after ``--skip`` steps, weight and architecture steps
together) and the global throughput (images of all ranks per second); ``data.batch_size`` is
per rank, so two processes handle twice the images per step.
Results: benchmarks/results/ddp_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "ddp_throughput.json"


def worker(job: dict) -> None:
    """One rank: run the search and (rank 0) write the step times."""
    from proxylessnas.search.config import SearchConfig
    from proxylessnas.search.run import run_search

    stamps: list[float] = []
    config = SearchConfig().with_overrides(job["overrides"])
    run_search(config, stop_after_epoch=job["search_epoch"],
               on_step=lambda epoch, step: stamps.append(time.perf_counter()))
    if int(os.environ.get("RANK", "0")) == 0:
        Path(job["times"]).write_text(json.dumps(stamps))


def measure(nproc: int, threads: int, args, folder: Path) -> dict:
    times = folder / f"times-{nproc}x{threads}.json"
    overrides = [
        f"data.dataset=synthetic:{args.images}?resolution=32", f"space.name={args.space}",
        "hardware.target=flops",
        "search.warmup_epochs=1", "search.epochs=1", f"search.steps_per_epoch={args.steps}",
        f"data.batch_size={args.batch_size}", f"data.valid_batch_size={args.batch_size}",
        "arch.skip_first_epoch=false", "run.progress=false", "run.plots=false", f"run.threads={threads}",
        "run.eval_batches=1", f"run.out={folder / f'run-{nproc}x{threads}'}"]
    job = json.dumps({"overrides": overrides, "times": str(times), "search_epoch": 1})
    here = [sys.executable, __file__, "--worker", job]
    if nproc > 1:
        here = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                __file__, "--worker", job]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(here, env=env, check=True)
    wall = time.perf_counter() - started
    stamps = json.loads(times.read_text())
    # the search epoch's steps: weight steps plus an architecture step every arch.update_every
    search_stamps = stamps[args.steps:]
    steps = [b - a for a, b in zip(search_stamps, search_stamps[1:])][args.skip:]
    median = statistics.median(steps)
    images = args.batch_size * nproc
    return {"processes": nproc, "threads_per_process": threads, "median_step_s": round(median, 5),
            "images_per_step": images, "images_per_s": round(images / median, 1),
            "steps_measured": len(steps), "process_wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch (warm-up and search epoch)")
    parser.add_argument("--skip", type=int, default=3, help="first search steps left out of the median")
    parser.add_argument("--space", default="proxyless-cifar")
    parser.add_argument("--batch-size", type=int, default=32, help="images per rank per step")
    parser.add_argument("--images", type=int, default=4000, help="synthetic training images")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(nproc, threads, args, Path(tmp)) for nproc, threads in ((1, 1), (2, 1), (1, 2))]
    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup_vs_1x1"] = round(row["images_per_s"] / base, 3)
        print(f"{row['processes']} process(es) x {row['threads_per_process']} thread(s): median step "
              f"{row['median_step_s']:.4f} s, {row['images_per_s']:.1f} images/s "
              f"(x{row['speedup_vs_1x1']:.2f})")
    result = {"space": args.space, "batch_size_per_rank": args.batch_size, "resolution": 32,
              "steps_per_epoch": args.steps, "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
