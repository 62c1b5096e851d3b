"""The results study: run every benchmark behind docs/RESULTS.md, then regenerate it.

    python benchmarks/study.py --quick        # every stage at toy size, under 15 minutes
    python benchmarks/study.py                # the published numbers (about 5 hours here)
    python benchmarks/study.py --stages latency --redo latency   # one stage again

Stages (each a script in benchmarks/, run as a subprocess; its output goes to
``benchmarks/results/study/<mode>/``):

====================  =====================================================================
``supernet``          memory and step time of the supernet vs the child and DARTS (supernet_cost.py)
``latency``           table-sum and predictor accuracy, torch eager and ONNX Runtime (latency_accuracy.py)
``cifar``             CIFAR-10 at two latency targets, hardware specialisation, gradient vs
                      REINFORCE (study_cifar.py; resumable unit by unit)
``paired``            converged searches against the best random net of equal latency, 3 seeds
                      each, paired differences (study_cifar.py --paired; resumable; its own
                      folder ``results/study/paired[-quick]/``)
``gpu``               ImageNet GPU recipe steps, AMP, channels_last (gpu_check.py; only with CUDA)
====================  =====================================================================

Resumable: ``stages.json`` in the mode's folder records each finished stage (command, return
code, duration); a rerun skips them (``--redo STAGE`` forces one) and the ``cifar`` stage
continues its own unfinished searches and trainings. At the end (or with ``--render-only``)
``render_results.py`` rewrites docs/RESULTS.md from whatever results exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results" / "study"
STAGE_NAMES = ("supernet", "latency", "cifar", "paired", "gpu")


def stage_command(stage: str, mode: str, out: Path) -> list[str] | None:
    """The command line of one stage, paths relative to the repository root where it runs (None:
    the stage cannot run on this machine)."""
    python = [sys.executable]
    quick = mode == "quick"
    out = out.relative_to(BENCHMARKS.parent)
    if stage == "supernet":
        extra = ["--quick", "--threads", "1"] if quick else []
        return python + ["benchmarks/supernet_cost.py", *extra,
                         "--out", str(out / "supernet_cost.json")]
    if stage == "latency":
        extra = (["--samples", "30", "--fit", "60", "--noise-repeats", "3", "--rounds", "10",
                  "--seconds-per-key", "0.3", "--seconds-per-net", "0.2"] if quick else [])
        return python + ["benchmarks/latency_accuracy.py", "--out-dir", str(out), *extra]
    if stage == "cifar":
        return python + ["benchmarks/study_cifar.py", f"--{mode}"]
    if stage == "paired":
        return python + ["benchmarks/study_cifar.py", "--paired", *(["--quick"] if quick else [])]
    if stage == "gpu":
        import torch

        if not torch.cuda.is_available():
            return None
        extra = ["--steps", "5", "--batch-size", "32"] if quick else []
        return python + ["benchmarks/gpu_check.py", *extra, "--out", str(out / "gpu_check.json")]
    raise ValueError(stage)


def load_stages(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def save_stages(path: Path, stages: dict) -> None:
    from proxylessnas.runtime.atomic import atomic_write

    atomic_write(path, json.dumps(stages, indent=1) + "\n")


def run_stage(stage: str, command: list[str]) -> dict:
    print(f"== {stage}: python {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, cwd=BENCHMARKS.parent)
    seconds = time.perf_counter() - start
    print(f"== {stage}: {'done' if code == 0 else f'FAILED (exit {code})'} in {seconds / 60:.1f} min",
          flush=True)
    return {"command": command[1:], "returncode": code, "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (under 15 minutes)")
    parser.add_argument("--stages", default=",".join(STAGE_NAMES), help="comma-separated stages to run")
    parser.add_argument("--redo", default="", help="comma-separated stages to run again even if finished")
    parser.add_argument("--render-only", action="store_true", help="only regenerate docs/RESULTS.md")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    out = RESULTS / mode
    out.mkdir(parents=True, exist_ok=True)
    stages_path = out / "stages.json"
    stages = load_stages(stages_path)
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    redo = {s.strip() for s in args.redo.split(",") if s.strip()}
    unknown = sorted((set(wanted) | redo) - set(STAGE_NAMES))
    if unknown:
        print(f"error: unknown stage {', '.join(unknown)} (--stages): use {', '.join(STAGE_NAMES)}",
              file=sys.stderr)
        raise SystemExit(2)
    failed = []
    for stage in [] if args.render_only else wanted:
        if stages.get(stage, {}).get("returncode") == 0 and stage not in redo:
            print(f"== {stage}: finished earlier ({stages[stage]['finished']}), skipped", flush=True)
            continue
        command = stage_command(stage, mode, out)
        if command is None:
            print(f"== {stage}: skipped (no CUDA device on this machine)", flush=True)
            continue
        stages[stage] = run_stage(stage, command)
        save_stages(stages_path, stages)
        if stages[stage]["returncode"] != 0:
            failed.append(stage)
    subprocess.check_call([sys.executable, str(BENCHMARKS / "render_results.py")], cwd=BENCHMARKS.parent)
    if failed:
        print(f"error: stage(s) {', '.join(failed)} failed (benchmarks/study.py): see the output above, "
              "fix and rerun (finished stages are kept)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
