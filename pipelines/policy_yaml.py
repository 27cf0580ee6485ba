"""A strict YAML reader for policy files: safe tags only, no duplicate keys, bounded size."""

from __future__ import annotations

import yaml

MAX_POLICY_BYTES = 1_000_000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(text: str) -> object:
    """Parse policy text; raises ValueError with a short, line-numbered reason."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise ValueError(f"the file is larger than {MAX_POLICY_BYTES} bytes; a policy is a short YAML file")
    try:
        loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader derives from SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "invalid YAML"
        raise ValueError(f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ValueError("not valid YAML: nested too deeply") from None
    _check_unicode(loaded)
    return loaded


def _check_unicode(node: object) -> None:
    """A double-quoted string may spell a lone surrogate (a backslash, u, d800): valid YAML, but no database
    can store it (a fill value failed the chunk's UPDATE part-way), so the policy is refused.
    """
    stack, seen = [node], set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            if id(item) in seen:  # an alias of itself (`a: &x [*x]`): walked once
                continue
            seen.add(id(item))
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("the policy holds text that is not valid Unicode (an escaped lone surrogate "
                                 "such as \\ud800); write the characters themselves") from None
