"""Alibaba Cloud EventBridge event-pattern matching, for testing rule filters offline.

Follows https://www.alibabacloud.com/help/en/eventbridge/user-guide/event-patterns:

* every key of the pattern must match (AND); a key's value is either a nested pattern
  (an object, matched against the event's object at that key) or a list of conditions,
  any one of which must match (OR);
* a condition is an exact value (string, number, ``true``/``false``/``null``; numbers
  are compared by their JSON text, so ``300`` is not ``300.0``) or an operator object:
  ``prefix``, ``suffix``, ``contains``, ``anything-but`` (a value, a list of values, or
  ``{"prefix": ...}`` / ``{"suffix": ...}``), ``exists``, ``numeric``, ``cidr``;
* a field the event lacks matches only ``{"exists": false}``; a list in the event
  matches when any of its elements does.

:func:`validate` rejects patterns EventBridge would refuse (unknown operators, empty
condition lists, bare values outside a list).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()
_SCALARS = (str, int, float, bool, type(None))
_NUMERIC_OPS = {"=", "<", "<=", ">", ">="}


class PatternError(ValueError):
    """The pattern is not a valid EventBridge event pattern."""


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when ``event`` (a decoded CloudEvents JSON object) matches ``pattern``."""
    validate(pattern)
    return _match_object(pattern, event)


def validate(pattern: Any, path: str = "") -> None:
    if not isinstance(pattern, Mapping):
        raise PatternError(f"{path or 'pattern'}: expected an object, got {type(pattern).__name__}")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, Mapping):
            validate(value, where)
        elif isinstance(value, list):
            if not value:
                raise PatternError(f"{where}: empty list of conditions")
            for condition in value:
                _validate_condition(condition, where)
        else:
            raise PatternError(f"{where}: conditions must be in a list, got {value!r}")


def _validate_condition(condition: Any, where: str) -> None:
    if isinstance(condition, _SCALARS):
        return
    if not isinstance(condition, Mapping) or len(condition) != 1:
        raise PatternError(f"{where}: a condition is a value or an object with one operator: {condition!r}")
    ((op, arg),) = condition.items()
    if op in ("prefix", "suffix", "contains"):
        if not isinstance(arg, str):
            raise PatternError(f"{where}: {op} takes a string")
    elif op == "anything-but":
        if isinstance(arg, Mapping):
            if (
                len(arg) != 1
                or next(iter(arg)) not in ("prefix", "suffix")
                or not isinstance(next(iter(arg.values())), str)
            ):
                raise PatternError(f"{where}: anything-but takes a value, a list or {{prefix|suffix: str}}")
        elif isinstance(arg, list):
            if not arg or not all(isinstance(v, _SCALARS) for v in arg):
                raise PatternError(f"{where}: anything-but list must hold values")
        elif not isinstance(arg, _SCALARS):
            raise PatternError(f"{where}: anything-but takes a value, a list or {{prefix|suffix: str}}")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise PatternError(f"{where}: exists takes true or false")
    elif op == "numeric":
        _numeric_pairs(arg, where)
    elif op == "cidr":
        try:
            ipaddress.IPv4Network(arg, strict=False)
        except (ValueError, TypeError):
            raise PatternError(f"{where}: cidr takes an IPv4 network, got {arg!r}") from None
    else:
        raise PatternError(f"{where}: unknown operator {op!r}")


def _numeric_pairs(arg: Any, where: str) -> list[tuple[str, float]]:
    if not isinstance(arg, list) or not arg or len(arg) % 2:
        raise PatternError(f"{where}: numeric takes [op, number, ...]")
    pairs = list(zip(arg[::2], arg[1::2], strict=True))
    for op, number in pairs:
        if op not in _NUMERIC_OPS or isinstance(number, bool) or not isinstance(number, (int, float)):
            raise PatternError(f"{where}: bad numeric comparison {op!r} {number!r}")
    return [(op, float(number)) for op, number in pairs]


def _match_object(pattern: Mapping[str, Any], event: Any) -> bool:
    for key, expected in pattern.items():
        actual = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            # A nested pattern needs an object there; only exists:false survives its absence.
            if actual is _MISSING:
                actual = {}
            if not isinstance(actual, Mapping) or not _match_object(expected, actual):
                return False
        elif not any(_match_condition(condition, actual) for condition in expected):
            return False
    return True


def _match_condition(condition: Any, actual: Any) -> bool:
    if isinstance(condition, Mapping) and "exists" in condition:
        return (actual is not _MISSING) is condition["exists"]
    if actual is _MISSING:
        return False
    if isinstance(actual, list):
        return any(_match_value(condition, item) for item in actual)
    return _match_value(condition, actual)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a) == json.dumps(b)


def _match_value(condition: Any, value: Any) -> bool:
    if not isinstance(condition, Mapping):
        return _same(condition, value)
    ((op, arg),) = condition.items()
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "contains":
        return isinstance(value, str) and arg in value
    if op == "anything-but":
        if isinstance(arg, Mapping):
            ((kind, text),) = arg.items()
            if not isinstance(value, str):
                return True
            return not (value.startswith(text) if kind == "prefix" else value.endswith(text))
        excluded: Sequence[Any] = arg if isinstance(arg, list) else [arg]
        return not any(_same(value, item) for item in excluded)
    if op == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return all(_compare(float(value), cmp, bound) for cmp, bound in _numeric_pairs(arg, "numeric"))
    if op == "cidr":
        try:
            return ipaddress.IPv4Address(value) in ipaddress.IPv4Network(arg, strict=False)
        except (ValueError, TypeError):
            return False
    raise PatternError(f"unknown operator {op!r}")  # pragma: no cover - validate() rejects it first


def _compare(value: float, op: str, bound: float) -> bool:
    return {
        "=": value == bound,
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
    }[op]
