"""YAML loading with line numbers and without YAML 1.1's surprises.

PyYAML implements YAML 1.1, where ``1e-3`` is a string, ``yes`` is a boolean,
``017`` is octal 15 and ``1:30`` is 90. Configurations here are read with
YAML 1.2-like rules instead: ``1e-3`` is a float, only ``true``/``false`` are
booleans (``yes``/``no`` stay strings and are coerced by the declared type of the
property they set), ``017`` is decimal 17, a bare ``.`` is a string (``root: .``) and
sexagesimal numbers do not exist.
Duplicate keys are an error. Always ``safe``: no arbitrary Python objects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["load_yaml", "YamlError", "Marks"]

Marks = dict[tuple, int]  # key path -> 1-based line number


class YamlError(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
                   |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    s = loader.construct_scalar(node).replace("_", "")
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if s.startswith(prefix):
            return sign * int(s[2:], base)
    return sign * int(s, 10)  # "017" is 17, not octal


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(path: str | Path) -> tuple[Any, Marks]:
    """Parse a YAML file into plain Python data plus the line of every key path."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        marks: Marks = {}
        data = _build(loader, node, (), marks) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(f"YAML syntax error: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return data, marks


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, marks: Marks) -> Any:
    marks[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        # Keys written in this mapping (not merged in with "<<") may not repeat; merged keys
        # come first after flattening and are overridden by later ones, as YAML specifies.
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)
        out: dict = {}
        own_seen: set = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise YamlError("mapping keys must be scalars", key_node.start_mark.line + 1)
            if id(key_node) in own:
                if key in own_seen:
                    raise YamlError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
                own_seen.add(key)
            out[key] = _build(loader, value_node, path + (key,), marks)
            marks[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), marks) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
