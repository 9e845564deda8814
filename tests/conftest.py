"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests use tiny tensors: a second intra-op thread only adds synchronisation, which costs ~10 ms per
    op when the machine is busy (measured on the VAE tests: 184 s with 2 threads, 8 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
