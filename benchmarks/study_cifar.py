"""CIFAR-10 results study (issue 8, items 3, 4, 5), run through the ``proxyless`` command line.

3. Accuracy at equal latency: gradient searches (``full_v2``) for a low and a high CPU latency
   target; each searched net against the MobileNetV2 whose measured latency is closest (two
   families on a width grid: the zoo net's CIFAR-size variant, and k3 e6 blocks on the study
   backbone), and against random architectures of the study
   space measured within +-5 % of it (searched net, width grid and candidates timed in one
   interleaved session); every net trained with the same budget and seed.
4. Hardware specialisation: searches at the same relative target position for torch eager CPU
   (``cpu``), ONNX Runtime (``onnxruntime``) and MACs (``flops``); every found net measured on
   every target and trained; a cross table and the diagrams side by side.
5. Gradient (``full_v2``, ``two``) against REINFORCE at the same target and number of weight steps.

    python benchmarks/study_cifar.py --quick     # plumbing check: tiny data, 1 epoch (5:45 here, --jobs 1)
    python benchmarks/study_cifar.py [--full]    # the published numbers (expected ~2.4 h, 2 cores)
    python benchmarks/study_cifar.py --paired    # issue 16 part 4: searched vs best random, 3 seeds
        [--work DIR] [--data cifar10:DIR] [--jobs 2] [--report-only]

Sizing of ``--full`` (measured on the 2-core machine, one thread, load ~2.5 from other jobs):
one search epoch of 50 weight steps at batch 64 took 45 s without and 110 s with architecture
steps (one per weight step); a whole search of 2 + 6 such epochs took 12:12 (about 160 s of it
calibration, final selection, test and plots). Full mode uses 30-step epochs, 2 + 4: about 7 min per
measured-hardware search, ~40 min for all six. One training epoch on 600 images per class (6,000
train + 6,000 test, batch 64) took 81 s for a searched net (2.3 ms) and 128 s for a random net of
the space; on 1,000 per class at batch 128: 124 s, 106 s (mbv2_k3e6_w0.35), 192 s (random), 99 s
(mobilenet_v2_w0.25). Twenty trainings of 5 epochs, two at a time: ~95 min. With the ONNX Runtime
table (~4 min if not cached), matching (~2 min) and 36 ``latency measure`` calls (~3 min): ~2.4 h.

Study space: ``proxyless-cifar`` with ``space.width_mult=0.5 space.depths=[2,2,2,2,2,1]``;
latency: torch eager, CPU, batch 1, one thread. Every search, training and cross measurement is a
``proxyless`` command (listed in the results); the Python API is used only where the command line
has no equivalent (MobileNetV2 at width w, random architectures, the interleaved matching
session, MACs). Each finished unit is recorded in ``<work>/state.json``: rerunning skips it and
continues an unfinished search or training with ``--resume``. Results go to
``benchmarks/results/study/<mode>/``: ``study_cifar.json`` (every number, command, version),
``study_cifar.md`` (tables and readings), ``accuracy_vs_latency.png``,
``specialisation_diagrams.png``.

Quick mode keeps its latency tables in ``<work>/cache`` (``PROXYLESS_CACHE``), built fast
(0.1 s per block), so it never writes low-quality tables into the user's cache; full mode uses

The code is the package ``benchmarks/cifar_study/`` (one module per job: settings, nets,
runner, stages, matching, results, figures, markdown); this file is its command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from cifar_study.helpers import dataset_folder, repository_relative
from cifar_study.paired import run_paired, write_paired_report
from cifar_study.runner import Study, UnitFailed
from cifar_study.settings import DEFAULT_DATA, FULL, PAIRED, PAIRED_QUICK, QUICK, REPO
from cifar_study.stages import run_study, write_report


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: checks the plumbing")
    mode.add_argument("--full", action="store_true", help="the published numbers (default)")
    parser.add_argument("--paired", action="store_true",
                        help="issue 16 part 4: converged searches against the best random net of equal "
                             "latency, 3 seeds each, paired (with --quick: its plumbing check)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default runs/study-<mode>)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 spec (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings in parallel, one thread each")
    parser.add_argument("--report-only", action="store_true", help="only render the results from the state")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from proxylessnas.errors import ProxylessError

    args = parse_arguments(argv)
    if args.paired:
        settings = PAIRED_QUICK if args.quick else PAIRED
    else:
        settings = QUICK if args.quick else FULL
    work = args.work or REPO / "runs" / f"study-{settings.mode}"
    try:
        data = args.data if args.data == DEFAULT_DATA else repository_relative(args.data, Path.cwd())
        folder = dataset_folder(data)
        if folder is None or not (REPO / folder).is_dir():
            raise ProxylessError("CIFAR-10 folder not found", args.data,
                                 "pass --data cifar10:DIR (the JPEG copy lives in ../shared/data/cifar10)")
        if args.jobs < 1:
            raise ProxylessError("--jobs must be at least 1", "--jobs", "give --jobs 1 or 2")
        study = Study(settings, work.resolve(), data, args.jobs)

        def stop(signal_number, frame):  # noqa: ARG001
            study.log(f"stopping on {signal.Signals(signal_number).name}: rerun the same command to continue")
            study.stop_children()
            raise KeyboardInterrupt

        # the children run in their own sessions (a terminal's Ctrl-C reaches only this process):
        # each gets exactly one SIGTERM, checkpoints and exits
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        study.log(f"{settings.mode} study in {work}; data {data}")
        if args.report_only:
            (write_paired_report if args.paired else write_report)(study)
        else:
            (run_paired if args.paired else run_study)(study)
        study.log("finished")
        return 0
    except ProxylessError as error:
        print(error.line(), file=sys.stderr)
        return 2
    except UnitFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
