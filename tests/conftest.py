"""Test-wide settings: CPU only, one intra-op thread, deterministic seeds.

One thread because several tests start subprocesses (DDP ranks, a killed-and-resumed training run, forked
renderers): with more threads per process the 2-core CI machine oversubscribes and steps slow down ~10x.
``OMP_NUM_THREADS`` is set before torch is imported so those subprocesses inherit it.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
