"""The KFP components, built from :mod:`._functions` with a configurable image and package.

``base_image`` (``$DATUMFLOW_KFP_BASE_IMAGE``) is an image that already holds
datumflow and kfp — by default ``datumflow/kfp:0.1.0``, built from
``docker/kfp.Dockerfile`` — so a pod installs nothing and needs no ``pip``
(nor an index that has datumflow). ``packages_to_install``
(``$DATUMFLOW_KFP_PACKAGE``, default empty) names a pip spec to install at
start instead (a wheel URL, ``datumflow==0.1.0``); only then does the pod
run pip, and KFP adds its own kfp package.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from kfp import dsl

from . import _functions

__all__ = ["DEFAULT_BASE_IMAGE", "DEFAULT_PACKAGE", "NAMES", "Components", "component_options", "make_components"]

DEFAULT_PACKAGE = ""  # preinstalled in the base image: nothing to pip-install
DEFAULT_BASE_IMAGE = "datumflow/kfp:0.1.0"
PACKAGE_ENV = "DATUMFLOW_KFP_PACKAGE"
BASE_IMAGE_ENV = "DATUMFLOW_KFP_BASE_IMAGE"


class Components(NamedTuple):
    read_commit: Any
    write_commit: Any
    wait_for_commit: Any
    datum_step: Any
    merge_branch: Any


NAMES = Components._fields  # the package's __init__ repeats them, to stay importable without kfp


def component_options(
    package: str | None = None, base_image: str | None = None, *, needs_datumflow: bool = True
) -> dict[str, Any]:
    """``dsl.component`` keyword arguments (``None``: from the environment, then the defaults)."""
    package = (os.environ.get(PACKAGE_ENV, DEFAULT_PACKAGE) if package is None else package).strip()
    return {
        "base_image": base_image or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE,
        "packages_to_install": [package] if package and needs_datumflow else [],
        "install_kfp_package": bool(package),
    }


def make_components(package: str | None = None, base_image: str | None = None) -> Components:
    """The components for ``package`` on ``base_image`` (``None``: from the environment, then defaults)."""
    options = component_options(package, base_image)
    return Components(*(dsl.component(getattr(_functions, name), **options) for name in NAMES))
