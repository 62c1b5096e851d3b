"""Signal handlers of runs act in their own process only: a process forked from a run (a library's
helper, e.g. a runtime's telemetry sender that its parent ends with SIGTERM) ends as without them."""

import multiprocessing
import signal
import time

import pytest

from proxylessnas.runtime.stopping import Terminated, stop_on_signals, terminate_on_sigterm


def _sleep() -> None:
    time.sleep(30)


@pytest.mark.parametrize("guard", [terminate_on_sigterm, stop_on_signals])
def test_forked_child_ends_on_sigterm_without_the_runs_handler(guard):
    with guard():
        child = multiprocessing.get_context("fork").Process(target=_sleep)
        child.start()
        time.sleep(0.3)
        child.terminate()
        child.join(10)
        alive = child.is_alive()
        if alive:
            child.kill()
    # the run's handler would raise Terminated in the child (exit code 1, a traceback) or, for
    # stop_on_signals, only set a flag and let it sleep on
    assert not alive and child.exitcode == -signal.SIGTERM


def test_sigterm_in_the_run_itself_still_raises():
    import os

    with pytest.raises(Terminated), terminate_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    with stop_on_signals() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert flag["signal"] == signal.SIGTERM
