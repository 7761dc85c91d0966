"""The lean TorchTrainer leaves out the per-run actors a job without Ray Datasets (and, on a local Ray, without a
cluster's placement-group cleaner) never uses, and keeps them where they are used."""

import pytest
from ray.train import ScalingConfig
from ray.train.v2._internal.callbacks import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

from parallel_r1.base_model.torch_trainer import PG_CLEANER_ENV, solo_trainer, torch_trainer


def _callback_types(monkeypatch, cleaner: str | None, make=torch_trainer, **kwargs) -> set[type]:
    if cleaner is None:
        monkeypatch.delenv(PG_CLEANER_ENV, raising=False)
    else:
        monkeypatch.setenv(PG_CLEANER_ENV, cleaner)
    trainer = make(lambda config: None, scaling_config=ScalingConfig(num_workers=1), **kwargs)
    return {type(cb) for cb in trainer._create_default_callbacks()}


@pytest.mark.parametrize("make", [torch_trainer, solo_trainer])
@pytest.mark.parametrize("cleaner, kept", [("0", False), (None, True), ("1", True)])
def test_datasets_actor_dropped_cleaner_only_on_a_local_ray(monkeypatch, cleaner, kept, make):
    types = _callback_types(monkeypatch, cleaner, make)
    assert DatasetsCallback not in types
    assert (PlacementGroupCleanerCallback in types) is kept


def test_a_trainer_given_datasets_keeps_the_dataset_manager(ray_session, monkeypatch):
    import ray.data

    types = _callback_types(monkeypatch, "0", datasets={"train": ray.data.from_items([{"x": 1}])})
    assert DatasetsCallback in types


def test_the_solo_trainer_sets_up_no_torch_process_group():
    from ray.train.torch import TorchConfig

    assert isinstance(torch_trainer(lambda config: None).backend_config, TorchConfig)
    assert not isinstance(solo_trainer(lambda config: None).backend_config, TorchConfig)
