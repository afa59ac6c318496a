"""The one compiled part: the folder scan of ``datumflow sync`` (metadata is in pyproject.toml).

It is optional: without a C compiler the install goes on and the sync scans
in Python (the same result, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "datumflow.storage_service.sync._scan",
            ["storage_service/sync/_scan.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
