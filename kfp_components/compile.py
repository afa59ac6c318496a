"""Compile the components to YAML: ``python -m datumflow.kfp_components.compile [OUT_DIR]``.

``make kfp-components`` runs it on the package folder; the shipped files use
the default package spec and base image, whatever the environment says.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kfp import compiler

from .components import DEFAULT_BASE_IMAGE, DEFAULT_PACKAGE, NAMES, make_components

__all__ = ["compile_all", "main"]


def compile_all(out_dir: Path, *, package: str = DEFAULT_PACKAGE, base_image: str = DEFAULT_BASE_IMAGE) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    built = make_components(package, base_image)
    written = []
    for name in NAMES:
        target = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(getattr(built, name), str(target))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(Path(__file__).parent))
    parser.add_argument("--package", default=DEFAULT_PACKAGE, help="pip spec of datumflow ('' = preinstalled)")
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE)
    args = parser.parse_args(argv)
    for path in compile_all(Path(args.out_dir), package=args.package, base_image=args.base_image):
        print(path)


if __name__ == "__main__":
    main()
