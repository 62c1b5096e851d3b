"""Generated inputs for every command: bytes, JSON and YAML as arch files, configs, latency tables,
checkpoints and other files, and generated option values (issue 20).

Every case ends in exit 0 with a result on stdout, or in exit 2 with exactly one ``error:`` line
(the last line of stderr; any other line there is a one-line ``warning:``); no traceback; no file of
an earlier run changes. The CLI is called in-process (:func:`proxylessnas.cli.main`) and hypothesis
runs derandomized, so CI sees the same cases every time. Valid values that only make a run longer
(more epochs, bigger inputs) are capped: the cases test the handling of inputs, not endurance.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import traceback
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxylessnas import Arch, get_space
from proxylessnas.cli import build_parser, main
from proxylessnas.hardware.exchange import MANIFEST_KIND, MANIFEST_SCHEMA_VERSION
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend

pytestmark = pytest.mark.slow


def fuzz(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


DATA = "synthetic:64?resolution=16"
SEARCH = ["--space", "tiny", "--hardware", "flops", "--dataset", "synthetic:128?resolution=16",
          "--epochs", "1", "--warmup-epochs", "1", "--no-progress", "search.steps_per_epoch=1",
          "data.batch_size=8", "data.valid_batch_size=8", "run.eval_batches=1",
          "run.bn_recalibration_batches=1", "run.plots=false", "run.threads=1"]
TRAIN = ["--dataset", DATA, "--epochs", "1", "--batch-size", "8", "--max-steps", "1", "--no-progress",
         "--threads", "1"]

# -- the earlier run: files no case may change ------------------------------------------------------


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class Cases:
    """Runs cases in-process in a fresh scratch folder each, and checks the contract."""

    def __init__(self, earlier: Path, scratch: Path) -> None:
        self.earlier, self.scratch = earlier, scratch
        self.numbers = itertools.count()
        self.snapshot = digests(earlier)
        self.counts: collections.Counter[str] = collections.Counter()  # cases per test function

    def folder(self) -> Path:
        path = self.scratch / f"case{next(self.numbers)}"
        path.mkdir()
        return path

    def fill(self, items: list[str], folder: Path) -> list[str]:
        return [item.replace("{E}", str(self.earlier)).replace("{S}", str(folder)) for item in items]

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        threads = torch.get_num_threads()
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as stop:  # --help, --version
                    code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except Exception:  # noqa: BLE001 - a traceback is what the fuzzing looks for
            shown = [a[:200] for a in argv]
            pytest.fail(f"traceback for {shown}:\n{traceback.format_exc()[-5000:]}\n"
                        f"stderr:\n{err.getvalue()}")
        finally:
            torch.set_num_threads(threads)
        return code, out.getvalue(), err.getvalue()

    def check(self, argv: list[str]) -> int:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1]
        self.counts[test.split("[")[0].split(" ")[0]] += 1
        code, out, err = self.run(argv)
        where = f"{[a[:200] for a in argv]}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
        assert "Traceback" not in out + err, where
        if code == 0:
            assert out.strip(), f"exit 0 without a result: {where}"
        else:
            lines = err.splitlines()
            errors = [line for line in lines if line.startswith("error: ")]
            assert code == 2, f"exit {code}: {where}"
            assert len(errors) == 1 and lines[-1] == errors[0], where
            assert all(line.startswith(("warning: ", "error: ")) for line in lines), where
            assert "weights_only=False" not in err, where
        now = digests(self.earlier)
        changed = {name for name, digest in self.snapshot.items() if now.get(name) != digest}
        assert not changed, f"earlier run's files changed or gone: {sorted(changed)}: {where}"
        return code


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    earlier, scratch = root / "earlier", root / "scratch"
    scratch.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("PROXYLESS_CACHE", str(root / "cache"))
    patch.chdir(scratch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_earlier_run(earlier)
        yield Cases(earlier, scratch)
    finally:
        torch.set_num_threads(threads)
        patch.undo()


def make_earlier_run(root: Path) -> None:
    """An arch, a training run, its export, a search run, latency tables, a recipe and a manifest."""
    root.mkdir()
    space = get_space("tiny")
    ops = [layer.candidates[0].token for layer in space.searched_layers]
    Arch.from_ops(space, ops).save(root / "arch.json")
    assert main(["train", str(root / "arch.json"), *TRAIN, "--out", str(root / "run")]) == 0
    assert main(["export", str(root / "run" / "last.pt"), "--format", "onnx",
                 "--out", str(root / "exported" / "net.onnx")]) == 0
    assert main(["search", *SEARCH, "--out", str(root / "search")]) == 0
    keys = space_keys(space).unique()
    entries = {str(k): LatencyStats.from_samples([0.1 + 0.01 * i, 0.2]) for i, k in enumerate(keys)}
    table = LatencyTable(TableTarget.of(space), Backend("torch", "cpu", 1, 1).provenance(), entries)
    table.save(root / "table.json")
    (root / "legacy.yaml").write_text(yaml.safe_dump(
        {"Conv-input:16x16x3-output:16x16x8": {"count": 3, "mean": 0.5, "var": 0.01}}))
    (root / "manifest.json").write_text(json.dumps(
        {"kind": MANIFEST_KIND, "schema_version": MANIFEST_SCHEMA_VERSION,
         "target": table.to_dict()["target"], "ops": [{"key": str(k)} for k in keys]}))
    (root / "timings.csv").write_text("key,ms\n" + "".join(f"{k},0.5\n" for k in keys))
    measured = [{"choices": Arch.from_ops(space, [layer.candidates[i % len(layer.candidates)].token
                                                  for layer in space.searched_layers]).to_dict()["choices"],
                 "measured": 1.0 + 0.1 * i} for i in range(3)]
    (root / "measured.json").write_text(json.dumps(measured))


# -- generated values -------------------------------------------------------------------------------

def _safe_text(text: str) -> bool:
    """Never an absolute path, a home path or a way up out of the scratch folder."""
    return not text.startswith(("/", "~")) and ".." not in text


TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24).filter(_safe_text)
EDGE_NUMBERS = ["0", "-0", "-1", "1e309", "-1e309", "nan", "inf", "-inf", "NaN", "1e-320", "0.5", "2.5",
                "1_000", "0x10", " 7", "", "-", "4097", "99999999999999999999999", "1" * 5000, "1e30", "true"]
NUMBERS = st.one_of(st.integers(-3, 40).map(str), st.sampled_from(EDGE_NUMBERS),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
PATHS = ["{E}", "{E}/run", "{E}/run/last.pt", "{E}/search", "{E}/search/checkpoint.pt",
         "{E}/search/arch.json", "{E}/exported/net.onnx", "{E}/exported/net.safetensors",
         "{E}/exported/net.card.json", "{E}/table.json", "{E}/legacy.yaml", "{E}/arch.json",
         "{E}/manifest.json", "{E}/timings.csv", "{E}/measured.json", "{E}/search/config.yaml",
         "{E}/arch.json/inside",
         "{S}", "{S}/new.json", "{S}/new/", "{S}/a/b/c.onnx", "{S}/m.pt", "{S}/x.csv", "absent.json",
         ".", "-",
         "proxyless_cpu", "mobilenet_v2", "tiny", "nasbench201", "cpu", "flops", "params",
         "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
         "|bad~9|", "demo", "synthetic", "synthetic:5", "synthetic:64?resolution=0", "synthetic:64?nosuch=1",
         "synthetic:99999999999999", "synthetic:64?limit_per_class=-1", "synthetic:64?resolution=9999",
         "imagefolder:{E}/run", "cifar10:{S}", "mnist:absent", "fashion-mnist:{E}/table.json"]
VALUES = st.one_of(NUMBERS, TEXT, st.sampled_from(PATHS))
CAPS = {"--seconds-per-key": 0.002, "--samples": 3, "--fit": 2, "--rounds": 2, "--repeats": 2, "--epochs": 2,
        "--warmup-epochs": 1, "--resolution": 64, "--batch-size": 32, "--gauge": 1, "--max-steps": 2,
        "--bn-batches": 2, "--nproc": 1, "--threads": 2, "--in-chs": 16, "--num-classes": 1000,
        "--measure": 2, "--validate": 2}
OVERRIDE_KEYS = ["search.epochs", "search.warmup_epochs", "search.steps_per_epoch", "data.batch_size",
                 "arch.lr", "weights.lr", "run.threads", "run.seed", "latency.target", "space.name",
                 "data.dataset", "run.out", "hardware.target", "nosuch.key", "run", "lr", "epochs",
                 "batch_size",
                 "warmup_epochs", "label_smoothing", "ema_decay", "dropout", "width_mult", "depths",
                 "num_classes", "resolution", "candidates", "zero", "head_width", ""]


def capped(option: str | None, value: str, cap: float | None) -> str:
    """``value``, or ``cap`` when it reads as a finite number above it (a longer run, no other path)."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return value
    return str(cap) if cap is not None and math.isfinite(number) and number > cap else value


# -- the commands and their cheapest valid calls ----------------------------------------------------

BASELINES = {  # positionals, then options; {E}: the earlier run, {S}: this case's scratch folder
    "space list": ([], []),
    "space show": (["tiny"], []),
    "zoo list": ([], []),
    "zoo show": (["proxyless_cpu"], []),
    "latency build": ([], ["--space", "tiny", "--seconds-per-key", "0.001", "--out", "{S}/t.json",
                           "--no-progress"]),
    "latency predict": (["{E}/arch.json"], ["--hardware", "flops"]),
    "latency validate": ([], ["--hardware", "flops", "--samples", "2", "--gauge", "0", "--no-progress"]),
    "latency export-ops": ([], ["--space", "tiny", "--out", "{S}/ops"]),
    "latency import": (["{E}/timings.csv"], ["--manifest", "{E}/manifest.json", "--out", "{S}/t.json"]),
    "latency measure": (["{E}/arch.json"], ["--rounds", "1", "--repeats", "1"]),
    "latency adapt": ([], ["--from", "{E}/table.json", "--measured", "{E}/measured.json",
                           "--out", "{S}/t.json"]),
    "train": (["{E}/arch.json"], [*TRAIN, "--out", "{S}/run"]),
    "eval": (["{E}/run/last.pt"], ["--dataset", DATA, "--no-progress", "--out", "{S}/eval"]),
    "export": (["{E}/run/last.pt"], ["--format", "torchscript", "--out", "{S}/m.pt"]),
    "search": ([], [*SEARCH, "--out", "{S}/search"]),
    "plot": (["{S}"], []),
}
REPORTS = {"--json", "--plot"}  # write the file they name, as asked: never aimed at the earlier run's files
SKIPPED_OPTIONS = {"--compile", "--nproc"}  # torch.compile: tens of seconds; --nproc: a torchrun of sys.argv
WEIGHTS = {"latency export-ops": 1, "latency validate": 2, "plot": 1, "eval": 2, "export": 3, "search": 4,
           "train": 4, "latency build": 3}  # cases per 2 of the cheap commands


def leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    def walk(parser, prefix):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(prefix), parser
            return
        for name, child in subs[0].choices.items():
            yield from walk(child, [*prefix, name])

    return dict(walk(build_parser(), []))


LEAVES = leaf_parsers()
COMMANDS = [name for name in LEAVES for _ in range(WEIGHTS.get(name, 2))]


def test_every_command_has_a_baseline():
    assert set(LEAVES) == set(BASELINES)


@st.composite
def option_cases(draw) -> tuple[str, list[str], list[str]]:
    """(command, positionals, options) with one option, positional or override replaced by a
    generated value."""
    name = draw(st.sampled_from(COMMANDS))
    positionals, options = (list(part) for part in BASELINES[name])
    actions = [a for a in LEAVES[name]._actions if not set(a.option_strings) & SKIPPED_OPTIONS]
    action = draw(st.sampled_from(actions))
    if not action.option_strings and action.nargs == "*":  # key=value overrides
        key = draw(st.one_of(st.sampled_from(OVERRIDE_KEYS), TEXT))
        options.append(f"{key}={capped(None, draw(VALUES), 3)}")
    elif not action.option_strings:
        index = [a for a in LEAVES[name]._actions if not a.option_strings and a.nargs != "*"].index(action)
        positionals[index] = draw(VALUES)
    elif action.nargs == 0:
        options.append(action.option_strings[0])
    else:
        option = action.option_strings[0]
        values = VALUES.filter(lambda v: not v.startswith("{E}")) if option in REPORTS else VALUES
        values = st.one_of(values, st.sampled_from(action.choices)) if action.choices else values
        options += [option, capped(option, draw(values), CAPS.get(option))]
    return name, positionals, options


@fuzz(200)
@given(option_cases())
def test_generated_option_values(cases, case):
    name, positionals, options = case
    folder = cases.folder()
    cases.check(cases.fill([*name.split(), *positionals, *options], folder))


# -- generated files ----------------------------------------------------------------------------------

LEAF_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 64),
                        st.sampled_from([10**30, -(2**63), 2**64]),
                        st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSONISH = st.recursive(LEAF_VALUES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=10)


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated(draw, document):
    """``document`` with one to three of its values replaced, removed or given a sibling."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(sorted(_paths(doc), key=repr)))
        value = draw(JSONISH)
        if not path:
            doc = value
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = value
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = value
        else:
            parent.append(value)
    return doc


def earlier_json(name: str) -> dict:
    return json.loads(Path(name).read_text())


@fuzz(90)
@given(st.data())
def test_generated_arch_files(cases, data):
    folder = cases.folder()
    arch = data.draw(mutated(earlier_json(cases.earlier / "arch.json")))
    path = folder / "arch.json"
    path.write_text(json.dumps(arch))
    cases.check(["latency", "predict", str(path), "--hardware", "flops"])
    cases.check(["latency", "measure", str(path), "--rounds", "1", "--repeats", "1"])


@fuzz(60)
@given(st.data())
def test_generated_configs(cases, data):
    folder = cases.folder()
    config = data.draw(mutated(yaml.safe_load((cases.earlier / "search" / "config.yaml").read_text())))
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(config))
    cases.check(["search", "--config", str(path), *SEARCH, "--out", str(folder / "search")])


@fuzz(80)
@given(st.data())
def test_generated_latency_tables(cases, data):
    folder = cases.folder()
    table = data.draw(mutated(earlier_json(cases.earlier / "table.json")))
    as_yaml = data.draw(st.booleans())
    path = folder / ("table.yaml" if as_yaml else "table.json")
    path.write_text(yaml.safe_dump(table) if as_yaml else json.dumps(table))
    cases.check(["latency", "predict", str(cases.earlier / "arch.json"), "--hardware", str(path)])


TENSORS = st.sampled_from([torch.zeros(0), torch.full((3,), float("nan")), torch.ones(2, 2),
                           torch.tensor(1e30), torch.zeros(8, 3, 3, 3, dtype=torch.float16), torch.arange(4)])


@fuzz(40)
@given(st.data())
def test_generated_checkpoints(cases, data):
    folder = cases.folder()
    state = torch.load(cases.earlier / "run" / "last.pt", weights_only=True)
    plain = {k: v for k, v in state.items() if not isinstance(v, dict) or k == "net_config"}
    mutated_plain = data.draw(mutated(json.loads(json.dumps(plain, default=lambda _: None))))
    if isinstance(mutated_plain, dict):
        state = {**state, **mutated_plain}
        for key in data.draw(st.lists(st.sampled_from(sorted(state)), max_size=2)):
            state.pop(key, None)
        weights = dict(state.get("model") or {}) if isinstance(state.get("model"), dict) else None
        if weights:
            weights[data.draw(st.sampled_from(sorted(weights)))] = data.draw(TENSORS)
            state["model"] = weights
    else:
        state = mutated_plain
    path = folder / "best.pt"
    torch.save(state, path)
    command = data.draw(st.sampled_from(["eval", "export"]))
    if command == "eval":
        cases.check(["eval", str(path), "--dataset", DATA, "--no-progress", "--out", str(folder / "eval")])
    else:
        cases.check(["export", str(path), "--format", "torchscript", "--out", str(folder / "m.pt")])


BYTE_TARGETS = {  # suffix: the command that reads such a file ({F})
    ".json": ["latency", "predict", "{F}", "--hardware", "flops"],
    ".yaml": ["search", "--config", "{F}", *SEARCH, "--out", "{S}/search"],
    ".pt": ["eval", "{F}", "--dataset", DATA, "--no-progress"],
    ".safetensors": ["export", "{F}", "--format", "onnx", "--out", "{S}/m.onnx"],
    ".csv": ["latency", "import", "{F}", "--manifest", "{E}/manifest.json", "--out", "{S}/t.json"],
    ".yml": ["latency", "predict", "{E}/arch.json", "--hardware", "{F}"],
    "table.json": ["latency", "predict", "{E}/arch.json", "--hardware", "{F}"],
    "weights.pt": ["export", "{E}/arch.json", "--format", "onnx", "--weights", "{F}", "--out", "{S}/m.onnx"],
}
SEEDS = ["run/last.pt", "exported/net.safetensors", "table.json", "arch.json", "search/config.yaml",
         "timings.csv", "exported/net.onnx", "search/checkpoint.pt"]


@st.composite
def file_bytes(draw, earlier: Path) -> bytes:
    """Random bytes, or a real file of the earlier run cut short, or with bytes flipped."""
    kind = draw(st.sampled_from(["random", "cut", "flipped"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    real = (earlier / draw(st.sampled_from(SEEDS))).read_bytes()
    if kind == "cut":
        return real[:draw(st.integers(0, max(0, len(real) - 1)))]
    data = bytearray(real)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@fuzz(70)
@given(st.data())
def test_generated_bytes_as_input_files(cases, data):
    folder = cases.folder()
    suffix = data.draw(st.sampled_from(sorted(BYTE_TARGETS)))
    path = folder / (suffix if suffix[0] != "." else "input" + suffix)
    path.write_bytes(data.draw(file_bytes(cases.earlier)))
    argv = [item.replace("{F}", str(path)) for item in BYTE_TARGETS[suffix]]
    cases.check(cases.fill(argv, folder))


# -- every output option aimed at every file and folder of the earlier run -------------------------

OUTPUTS = [("train", "--out"), ("search", "--out"), ("eval", "--out"), ("export", "--out"),
           ("latency build", "--out"), ("latency export-ops", "--out"), ("latency import", "--out")]
EARLIER_PATHS = [path for path in PATHS if path.startswith("{E}")]
OTHER_KIND = {("search", "{E}"): "its arch.json", ("search", "{E}/run"): "the training run's metrics.jsonl",
              ("train", "{E}/search"): "the search's metrics.jsonl"}  # see the test below


def with_option(name: str, option: str, value: str) -> list[str]:
    positionals, options = BASELINES[name]
    options = list(options)
    at = options.index(option)
    options[at + 1] = value
    return [*name.split(), *positionals, *options]


@pytest.mark.parametrize("name, option", OUTPUTS, ids=[" ".join(o) for o in OUTPUTS])
def test_outputs_aimed_at_an_earlier_run_change_none_of_its_files(cases, name, option):
    for path in EARLIER_PATHS:
        if (name, path) not in OTHER_KIND:
            cases.check(cases.fill(with_option(name, option, path), cases.folder()))


@pytest.mark.parametrize("name, path", sorted(OTHER_KIND), ids=[f"{n} {p}" for n, p in sorted(OTHER_KIND)])
def test_a_folder_holding_files_of_another_run_is_refused(cases, tmp_path, name, path):
    (tmp_path / "scratch").mkdir()
    own = Cases(Path(shutil.copytree(cases.earlier, tmp_path / "earlier")), tmp_path / "scratch")
    own.check(own.fill(with_option(name, "--out", path), own.folder()))


GENERATED = {"test_generated_option_values", "test_generated_arch_files", "test_generated_configs",
             "test_generated_latency_tables", "test_generated_checkpoints",
             "test_generated_bytes_as_input_files"}


def test_the_fuzzing_ran_enough_cases(cases):
    """The generated tests above ran at least 500 cases in all (this test runs after them)."""
    if not GENERATED <= set(cases.counts):
        pytest.skip("counts only when every generated test ran before it")
    total = sum(cases.counts[name] for name in GENERATED)
    print(f"{total} generated cases: {dict(cases.counts)}")
    assert total >= 500, cases.counts
