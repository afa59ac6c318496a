#!/usr/bin/env bash
# mypy --strict over the packages named in $MYPY_PACKAGES (default: the
# namespace root and the store). The distribution maps folders to packages
# (storage_service/ is datumflow.storage_service), which mypy cannot follow,
# so it reads them through a tree of links that has the import layout.
set -euo pipefail
cd "$(dirname "$0")/.."
src=.mypy-src
rm -rf "$src"
mkdir -p "$src/datumflow"
ln -s ../../datumflow/__init__.py "$src/datumflow/__init__.py"
for folder in storage_service plugin operators sensors kfp_components; do
    ln -s "../../$folder" "$src/datumflow/$folder"
done
args=()
for package in ${MYPY_PACKAGES:-datumflow datumflow.storage_service}; do
    if [ "$package" = datumflow ]; then args+=(-m datumflow); else args+=(-p "$package"); fi
done
MYPYPATH=$src exec "${PYTHON_BIN:-.venv/bin/python}" -m mypy "${args[@]}"
