"""Editing nested data (decoded JSON, parsed TOML) at any depth: how the fuzz
tests break a good document one field at a time."""

from __future__ import annotations

from typing import Any


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``node``: dict keys and list indexes."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def parent_of(data: Any, path: tuple) -> Any:
    """The dict or list holding the value at ``path``."""
    for step in path[:-1]:
        data = data[step]
    return data
