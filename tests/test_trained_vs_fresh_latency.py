"""``benchmarks/trained_vs_fresh_latency.py``: times a finished search's net with its trained weights
against the same net freshly built; a run directory that is missing or unfinished is one line, exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

from proxylessnas import Arch, build_net, get_space

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trained_vs_fresh_latency.py"


def run_dir(tmp_path: Path, finished: bool = True) -> Path:
    """A run directory shaped like a finished search's: arch.json and a checkpoint with the derived
    net's weights (trained here = BatchNorm moved off its initial values)."""
    space = get_space("tiny")
    arch = Arch.from_ops(space, [layer.candidates[-1] for layer in space.searched_layers])
    arch.save(tmp_path / "arch.json")
    net = build_net(space, arch)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.fill_(0.1)
    checkpoint = {"child_state_dict": net.state_dict()} if finished else {"epoch": 3}
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    return tmp_path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_a_finished_run_gets_both_timings_and_their_ratio(tmp_path):
    result = run(str(run_dir(tmp_path)), "--backend", "torch", "--rounds", "2")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^(trained|fresh) +median \d+\.\d+ ms", result.stdout, re.M)) == 4
    ratio = float(re.search(r"trained / fresh: (\d+\.\d+)", result.stdout).group(1))
    assert 0.2 < ratio < 5.0


def test_a_missing_or_unfinished_run_is_one_line_and_exit_2(tmp_path):
    missing = run(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "arch.json" in missing.stderr
    unfinished = run(str(run_dir(tmp_path, finished=False)))
    assert unfinished.returncode == 2 and len(unfinished.stderr.strip().splitlines()) == 1
    assert "not finished" in unfinished.stderr
    unknown = run(str(run_dir(tmp_path)), "--backend", "no-such-runtime")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
