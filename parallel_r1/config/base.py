"""The base of every config section: unknown fields are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from parallel_r1.errors import UserFacingError


class ConfigError(UserFacingError, ValueError):
    """A configuration the user wrote (or overrode) is invalid; the message names the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

