"""Writes mailbridge configuration data as a TOML file (tests and the dev stack run processes).

Only what a configuration holds: tables, arrays of tables, strings, numbers, booleans and lists
of strings. The result reads back with tomllib to the same data (tested).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string is a JSON string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _table(data: Mapping[str, Any], path: str, out: list[str]) -> None:
    tables = []
    for key, v in data.items():
        if v is None:
            continue
        if isinstance(v, Mapping) or (isinstance(v, list) and v and isinstance(v[0], Mapping)):
            tables.append((key, v))
        else:
            out.append(f"{key} = {_value(v)}")
    for key, v in tables:
        full = f"{path}.{key}" if path else key
        if isinstance(v, Mapping):
            out.append(f"\n[{full}]")
            _table(v, full, out)
        else:
            for item in v:
                out.append(f"\n[[{full}]]")
                _table(item, full, out)


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as TOML text."""
    out: list[str] = []
    _table(data, "", out)
    return "\n".join(out).lstrip("\n") + "\n"
