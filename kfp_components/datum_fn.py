"""What one datum runs: the user's function, called as ``process(input_path, output_dir)``.

``$DATUMFLOW_KFP_FUNCTION`` holds either Python source that defines
``process`` or a ``module:function`` path importable in the image.
``input_path`` is the datum's matched file or folder, ``output_dir`` the
folder whose files become the datum's output.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from .datum_step import FUNCTION_ENV, INPUT_NAME

ENTRY = "process"
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:")


def load(function: str) -> Callable[..., Any]:
    text = function.strip()
    if ":" in text and set(text) <= _PATH_CHARS:
        module, _, attr = text.partition(":")
        loaded: Any = getattr(importlib.import_module(module), attr)
        return loaded  # type: ignore[no-any-return]
    scope: dict[str, Any] = {"__name__": "datumflow_user_function"}
    exec(compile(function, "<datum function>", "exec"), scope)
    if not callable(scope.get(ENTRY)):
        raise SystemExit(f"the function source defines no {ENTRY}(input_path, output_dir)")
    return scope[ENTRY]  # type: ignore[no-any-return]


def main() -> None:
    fn = load(os.environ[FUNCTION_ENV])
    out = os.path.join(os.environ["DATUMFLOW_PFS"], "out")
    fn(os.environ[INPUT_NAME], out)


if __name__ == "__main__":
    main()
