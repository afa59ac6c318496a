"""The Airflow names the adapters build on, imported in one place (Airflow 3.3 and later: the Task SDK)."""

from __future__ import annotations

from typing import Any, TypeVar

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.bases.operatorlink import BaseOperatorLink
from airflow.sdk.bases.sensor import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

_T = TypeVar("_T")


def deprecated_alias(new: type[_T], old: str) -> type[_T]:
    """``old``: a subclass of ``new`` that warns on use (an operator or sensor renamed to ``Datumflow…``)."""
    import warnings

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        warnings.warn(f"{old} is deprecated: use {new.__name__}", AirflowProviderDeprecationWarning, stacklevel=2)
        new.__init__(self, *args, **kwargs)

    alias = type(old, (new,), {"__init__": __init__, "__doc__": f"Deprecated: use :class:`{new.__name__}`.",
                               "__module__": new.__module__, "__qualname__": old})
    return alias


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset), as Airflow's own deferrable operators read it."""
    from airflow.configuration import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


__all__ = [
    "AirflowException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "TriggerEvent",
    "default_deferrable",
    "deprecated_alias",
]
