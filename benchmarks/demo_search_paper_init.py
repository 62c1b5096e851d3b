"""The demo search with the paper release's independent candidate init (the "before" of
docs/supernet.md, "Training the supernet in short searches"), everything else as
``proxyless search``: ``python benchmarks/demo_search_paper_init.py OUT_DIR [key=value ...]``."""

from __future__ import annotations

import functools
import json
import sys
import time

from proxylessnas.search import run as search_run
from proxylessnas.search.config import load_config
from proxylessnas.supernet import SuperNet


def main() -> None:
    out, overrides = sys.argv[1], sys.argv[2:]
    config = load_config("demo", [f"run.out={out}", "run.progress=false", *overrides])
    search_run.SuperNet = functools.partial(SuperNet, embed_smallest=False, zero_init_residual=False)
    started = time.perf_counter()
    result = search_run.run_search(config)
    summary = result.summary
    train = [round(row["train_acc"], 3) for row in result.metrics]
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "train_accuracy": train,
                      "test_accuracy": summary["test_accuracy"], "choices": summary["choices"],
                      "measured_latency": summary["measured_latency"],
                      "target_latency_ms": summary["target_latency_ms"]}))


if __name__ == "__main__":
    main()
