"""The `ray` section: which Ray cluster the stages run on."""

from __future__ import annotations

from pydantic import Field

from parallel_r1.config.base import _Section


class RayConfig(_Section):
    address: str | None = Field(None, description="Ray cluster address; None: RAY_ADDRESS or a local Ray.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a locally started Ray (None: all).")
    include_dashboard: bool = Field(False, description="Start the dashboard with a local Ray.")
