import json
import subprocess
import sys

import pytest

from proxylessnas.cli import main


def test_zoo_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "proxyless_mobile" in out and "4.08M" in out and "320.43M" in out


def test_zoo_show_table_and_json(capsys):
    assert main(["zoo", "show", "proxyless_cpu"]) == 0
    out = capsys.readouterr().out
    assert "s6.b0" in out and "7x7x360" in out and "4,361,648" in out
    assert main(["zoo", "show", "proxyless_cpu", "--json", "--resolution", "160"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"][-2]["output"] == "5x5x1432"


def test_space_show(capsys):
    assert main(["space", "show", "proxyless-cifar"]) == 0
    assert "4x4x320" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["zoo", "show", "resnet50"], "unknown zoo model 'resnet50'"),
    (["zoo", "frobnicate"], "invalid choice"),
    (["space", "show", "nope"], "unknown search space"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_input_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err


def test_console_entry_point_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "proxylessnas", "zoo", "show", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_overrides_may_stand_between_options(capsys):
    # the override after --epochs reaches the recipe (argparse alone would drop it)
    assert main(["train", "mobilenet_v2", "--epochs", "1", "nosuchfield=1", "--dataset", "synthetic:64"]) == 2
    assert "unknown recipe key 'nosuchfield'" in capsys.readouterr().err
    assert main(["zoo", "list", "a=b"]) == 2  # a command without overrides refuses them
    assert "unrecognized arguments: a=b" in capsys.readouterr().err


def test_unknown_flag_after_command_is_one_line(capsys):
    assert main(["zoo", "list", "--nope"]) == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
