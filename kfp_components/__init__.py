"""Kubeflow Pipelines v2 components for datumflow.

==================  ================================================================
component           what it does
==================  ================================================================
``read_commit``     ``repo@ref[:path]`` -> a ``Dataset`` artifact + output ``commit``
``write_commit``    an artifact -> a commit on ``repo@branch`` with provenance and the KFP run
``wait_for_commit`` block until a branch has a finished commit; returns its id
``datum_step``      a user function per datum, skipping datums the datum cache knows
``merge_branch``    merge a branch into another (publish), the merge commit recording the KFP run
==================  ================================================================

The service address and token come from ``DATUMFLOW_ADDRESS`` /
``DATUMFLOW_TOKEN``, set from a Kubernetes Secret (see ``docs/kubeflow.md``).
Compiled component YAML ships beside this module (``load_yaml(name)``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .components import Components

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_PACKAGE",
    "NAMES",
    "Components",
    "component_options",
    "datum_step",
    "load_yaml",
    "make_components",
    "merge_branch",
    "read_commit",
    "wait_for_commit",
    "write_commit",
    "yaml_path",
]

NAMES = ("read_commit", "write_commit", "wait_for_commit", "datum_step", "merge_branch")
_FROM_COMPONENTS = {"DEFAULT_BASE_IMAGE", "DEFAULT_PACKAGE", "Components", "component_options", "make_components"}


# Built on first use, not at import: inside a pod the component body imports
# datumflow.kfp_components.runtime, and only KFP's executor runtime is there.
def __getattr__(name: str) -> Any:
    if name in NAMES:
        return getattr(_default_components(), name)
    if name in _FROM_COMPONENTS:
        from . import components

        return getattr(components, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _default_components() -> Components:
    from .components import make_components

    return make_components()


def yaml_path(name: str) -> Path:
    """The compiled YAML of component ``name`` shipped in this package."""
    if name not in NAMES:
        raise ValueError(f"no datumflow component {name!r}: one of {', '.join(NAMES)}")
    return Path(__file__).with_name(f"{name}.yaml")


def load_yaml(name: str) -> Any:
    """The component loaded from its compiled YAML (what a user without datumflow installed gets)."""
    from kfp import components

    return components.load_component_from_file(str(yaml_path(name)))
