"""YAML documents loaded with bounds, so that a small text cannot cost minutes of CPU.

``yaml.safe_load`` builds only plain values, but an *alias bomb* (nine
anchors each listing the previous one nine times: ~700 bytes) expands to
millions of nodes for whoever walks the result — a validator, a JSON dump.
:func:`load_all` composes each document's node graph first and refuses one
whose expanded size (every alias counted as often as it is used) passes
:data:`MAX_NODES`, or whose text passes :data:`MAX_TEXT`, before any value
is built.
"""

from __future__ import annotations

from typing import Any

import yaml
from datumflow.storage_service.errors import InvalidArgument

__all__ = ["MAX_ALIASES", "MAX_NODES", "MAX_TEXT", "load_all"]

MAX_TEXT = 1 << 20  # characters
MAX_NODES = 100_000  # expanded nodes per document
MAX_ALIASES = 1_000  # alias uses per document


class _Loader(yaml.SafeLoader):
    """A SafeLoader that counts the alias uses it composes."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise InvalidArgument(f"YAML uses more than {MAX_ALIASES} aliases: refused (alias bomb?)")
        return super().compose_node(parent, index)


def load_all(text: str) -> list[Any]:
    """Every document of ``text`` as plain values; InvalidArgument past the bounds, YAMLError if not YAML."""
    if len(text) > MAX_TEXT:
        raise InvalidArgument(f"the YAML text is {len(text)} characters long; at most {MAX_TEXT} are allowed")
    loader = _Loader(text)
    try:
        out = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None and _expanded_size(node) > MAX_NODES:
                raise InvalidArgument(
                    f"YAML document expands to more than {MAX_NODES} nodes through its aliases: refused"
                )
            out.append(loader.construct_document(node))
        return out
    except RecursionError as exc:
        raise InvalidArgument("the YAML text is nested too deeply") from exc
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document has once every alias is expanded; memoized, so linear in distinct nodes."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_NODES + 1  # a cycle (a recursive alias) counts as too big
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        total = min(total, MAX_NODES + 1)
        sizes[id(node)] = total
        return total

    return size(root)
