"""The store's value objects, as they were imported before the model was split by noun.

Kept so existing imports work; new code imports from :mod:`.commit` and :mod:`.file`
(or from the package, :mod:`datumflow.storage_service.model`).
"""

from __future__ import annotations

from datumflow.storage_service.model import commit, file
from datumflow.storage_service.model.commit import *  # noqa: F403
from datumflow.storage_service.model.file import *  # noqa: F403
from datumflow.storage_service.model.value import _Value

__all__ = [*commit.__all__, *file.__all__, "_Value"]  # the noun modules' own lists
del commit, file  # only their names are re-exported here, as before
