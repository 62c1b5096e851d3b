from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture
def official_dir(shared_dir) -> Path:
    path = shared_dir / "reference" / "official"
    if not path.is_dir():
        pytest.skip("../shared/reference/official is absent")
    return path


@pytest.fixture
def single_thread():
    """Tiny tensors: one thread avoids oversubscription on a shared machine (no behaviour change)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
