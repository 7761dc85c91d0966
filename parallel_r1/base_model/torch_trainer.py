"""The trainers the SFT, Tune and GRPO jobs run on: Ray Train's `TorchTrainer`, and its `DataParallelTrainer` (no
torch process group) for runs whose workers each train alone, both less per-run actors these jobs never use.

Besides its controller and workers, each Ray Train run starts a `DatasetManager` actor, for Ray Datasets passed to
the trainer (these jobs read their own files), and a detached `PlacementGroupCleaner`, which frees the run's
placement group if its controller dies while the driver lives on. Each is one more Python process to start and
keep alive. Measured with seven concurrent trainers on 2 CPUs, whose train functions import the SFT stack and
report once: they end 113-135 s after the start without the two actors, and 156-188 s with them.

The cleaner is dropped only on a Ray that parallel-r1 started itself, which sets `PARALLEL_R1_PG_CLEANER=0`
(see `ray_runtime`). That Ray lives and dies with the driver, and so do its placement groups. On a cluster the
cleaner stays.
"""

from __future__ import annotations

import functools
import os

PG_CLEANER_ENV = "PARALLEL_R1_PG_CLEANER"
# what torchrun (and TRL's colocated vLLM) set, and accelerate reads to set up a torch process group
TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def torch_trainer(train_loop, **kwargs):
    """A `TorchTrainer(train_loop, **kwargs)` without the actors above (Ray 2.60, pinned: the hook is private)."""
    return _lean_class(True)(train_loop, **kwargs)


def solo_trainer(train_loop, **kwargs):
    """A `DataParallelTrainer(train_loop, **kwargs)` without the actors above or a process group: for workers that
    each train a model of their own, which a torch process group would only make wait for each other. The workers
    drop torchrun's variables inherited from whoever started the cluster: accelerate would otherwise set up a process
    group on their port."""
    return _lean_class(False)(functools.partial(_alone, train_loop), **kwargs)


def _alone(train_loop, config: dict):
    for name in TORCHRUN_ENV:
        os.environ.pop(name, None)
    return train_loop(config)


@functools.cache
def _lean_class(with_torch: bool) -> type:
    from ray.train.v2._internal.callbacks import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    if with_torch:
        from ray.train.torch import TorchTrainer as base
    else:
        from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer as base

    class LeanTrainer(base):
        def _create_default_callbacks(self):
            unused = () if self.datasets else (DatasetsCallback,)
            if os.environ.get(PG_CLEANER_ENV) == "0":
                unused += (PlacementGroupCleanerCallback,)
            return [cb for cb in super()._create_default_callbacks() if not isinstance(cb, unused)]

    return LeanTrainer
