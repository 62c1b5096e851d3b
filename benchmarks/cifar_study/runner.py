"""The study's work folder and sub-processes: ``<work>/state.json`` (finished units and their
results), ``proxyless`` commands run as the user types them, each unit run once."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cifar_study.helpers import duration, with_option
from cifar_study.settings import REPO, STATE_VERSION, StudySettings


class UnitFailed(Exception):
    """A sub-command failed; the message says which and where its log is."""


def current_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class StudyState:
    """``<work>/state.json``: finished units and their results, written atomically."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        if path.exists():
            self.data = json.loads(path.read_text())
            if self.data.get("mode") != mode:
                from proxylessnas.errors import ProxylessError

                raise ProxylessError(f"the work folder holds a {self.data.get('mode')} study", str(path),
                                     f"give another --work for the {mode} study")
        else:
            self.data = {"version": STATE_VERSION, "mode": mode, "units": {}, "commands": []}

    def done(self, unit: str) -> bool:
        return unit in self.data["units"]

    def result(self, unit: str) -> Any:
        return self.data["units"][unit]["result"]

    def record(self, unit: str, result: Any, seconds: float) -> None:
        with self.lock:
            self.data["units"][unit] = {"result": result, "seconds": round(seconds, 2),
                                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "commit": current_commit()}
            self._save()

    def note_command(self, unit: str, command: str) -> None:
        with self.lock:
            entry = {"unit": unit, "command": command}
            if entry not in self.data["commands"]:
                self.data["commands"].append(entry)
                self._save()

    def _save(self) -> None:
        from proxylessnas.runtime.atomic import write_json_atomic

        write_json_atomic(self.path, self.data)


class Study:
    """A study's settings, work folder, data and state; runs ``proxyless`` commands and units
    (the stages in :mod:`cifar_study.stages` say which)."""

    def __init__(self, settings: StudySettings, work: Path, data: str, jobs: int) -> None:
        self.settings = settings
        self.work = work
        self.data = data
        self.jobs = jobs
        self.state = StudyState(work / "state.json", settings.mode)
        self.started = time.perf_counter()
        self.print_lock = threading.Lock()
        self.children: set[subprocess.Popen] = set()
        self.stopping = False
        self.environment = {"OMP_NUM_THREADS": "1"}
        if settings.table_seconds_per_key is not None:
            self.environment["PROXYLESS_CACHE"] = str(work / "cache")
            os.environ["PROXYLESS_CACHE"] = str(work / "cache")
        self.search_data = with_option(data, f"limit_per_class={settings.search_limit_per_class}")
        self.train_data = with_option(data, f"limit_per_class={settings.train_limit_per_class}")

    # --- logging and sub-processes
    def log(self, text: str) -> None:
        with self.print_lock:
            elapsed = duration(time.perf_counter() - self.started)
            print(f"[{datetime.now().strftime('%H:%M:%S')} +{elapsed}] {text}", flush=True)

    def shown(self, arguments: Sequence[str]) -> str:
        """The command as a user types it (environment prefix, ``proxyless`` console script)."""
        shown = {key: self.show_path(Path(value)) if key == "PROXYLESS_CACHE" else value
                 for key, value in self.environment.items()}
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in shown.items())
        return f"{prefix} proxyless {shlex.join(arguments)}"

    def proxyless(self, unit: str, arguments: Sequence[str]) -> None:
        """Run ``proxyless ARGUMENTS`` (as ``python -m proxylessnas``); output to ``logs/<unit>.log``."""
        if self.stopping:
            raise UnitFailed("stopped")
        self.state.note_command(unit, self.shown(arguments))
        log_path = self.work / "logs" / f"{unit.replace('/', '_')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **self.environment}
        with open(log_path, "a") as handle:
            handle.write(f"$ {self.shown(arguments)}\n")
            handle.flush()
            child = subprocess.Popen([sys.executable, "-m", "proxylessnas", *arguments], cwd=REPO,
                                     stdout=handle, stderr=subprocess.STDOUT, env=environment,
                                     start_new_session=True, preexec_fn=_die_with_parent)
            self.children.add(child)
            try:
                code = child.wait()
            finally:
                self.children.discard(child)
        if code != 0:
            tail = log_path.read_text().strip().splitlines()[-1:] or [""]
            raise UnitFailed(f"{unit}: 'proxyless {arguments[0]}' exited with {code}: {tail[0]} "
                             f"(log {log_path})")

    def stop_children(self) -> None:
        """Send each running search or training one SIGTERM: it checkpoints and exits; a rerun
        continues it with --resume."""
        self.stopping = True
        for child in list(self.children):
            child.send_signal(signal.SIGTERM)

    def unit(self, name: str, action: Callable[[], Any]) -> Any:
        """Run ``action()`` unless ``name`` is finished; record its result."""
        if self.state.done(name):
            return self.state.result(name)
        self.log(f"start {name}")
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
        self.state.record(name, result, seconds)
        self.log(f"done  {name} ({duration(seconds)})")
        return result

    # --- paths
    def search_dir(self, name: str) -> Path:
        return self.work / "search" / name

    def train_dir(self, name: str) -> Path:
        return self.work / "train" / name

    def arch_path(self, name: str) -> Path:
        return self.work / "archs" / f"{name}.json"

    def show_path(self, path: Path) -> str:
        try:
            return str(path.relative_to(REPO))
        except ValueError:
            return str(path)


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the study process dies (Linux), so no orphan keeps
    writing into a run folder that a rerun resumes."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
