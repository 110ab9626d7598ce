"""One local Ray for the whole test session (its start-up is the slow part of every sweep)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory):
    """A local Ray whose workers unpickle ``sweep_fixtures`` by value and log fake trials'
    epochs to the file it returns."""
    import ray
    import ray.cloudpickle

    import sweep_fixtures

    log = tmp_path_factory.mktemp("fake") / "trials.log"
    ray.cloudpickle.register_pickle_by_value(sweep_fixtures)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_TRIAL_LOG", str(log))  # inherited by Ray's workers
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield log
    ray.shutdown()


@pytest.fixture
def trial_log(local_ray):
    local_ray.write_text("")
    return local_ray


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for the test, restored after (steady timings, no oversubscription)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
