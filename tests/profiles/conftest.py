"""Shared fixtures: the package's embedding reader, its classifier fitted once per test session into a temporary
cache folder (so the tests neither read nor write ~/.cache)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile-cache")
    before = os.environ.get("PARALLEL_R1_CACHE_DIR")
    os.environ["PARALLEL_R1_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("PARALLEL_R1_CACHE_DIR", None)
    else:
        os.environ["PARALLEL_R1_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def embedding_reader(classifier_cache):
    """The process-wide reader `read_profile(method="embedding")` uses."""
    from parallel_r1.profiles.reader import embedding_reader

    return embedding_reader()


@pytest.fixture(scope="session")
def classifier(embedding_reader):
    return embedding_reader.classifier
