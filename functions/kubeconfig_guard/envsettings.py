"""Settings read from environment variables: the part of pydantic-settings kubeconfig-guard uses.

``settings.Settings`` was a ``pydantic_settings.BaseSettings``. Importing that package costs about
as much CPU as a third of the rest of the event function's import (its sources, its CLI models,
dotenv, argparse: BENCHMARKS.md, "Issue 19"), at every cold start of an instance that gets half a
vCPU, for one thing: filling the fields from ``KCGUARD_*`` variables. This module does that, with the
same rules for what settings.py declares:

* sources, by priority: the arguments given to the constructor, then the environment, then the
  field defaults (no ``.env`` file, no secrets directory: settings.py configures neither);
* the variable of a field is ``env_prefix`` + its name (or each string of its
  ``validation_alias``), matched case-insensitively unless ``case_sensitive``; with
  ``env_ignore_empty`` a variable set to ``""`` counts as unset;
* a value is the variable's text, validated by pydantic as any other input (lax: ``"true"``,
  ``"50"``, an enum's value); a field of a complex type (list, dict, set, tuple, model) is
  decoded from JSON first, unless marked ``NoDecode`` (``Annotated[list[str], NoDecode]``: the
  field's own validator splits it); for a union with a complex member, text that is not JSON
  stays text;
* defaults are validated (``validate_default``) and unknown arguments are rejected unless the
  class's config says otherwise (``extra="ignore"`` in settings.py), as in pydantic-settings.

``SettingsConfigDict`` carries the same keys as pydantic-settings' (``env_prefix``,
``case_sensitive``, ``env_ignore_empty``) so the class reads the same.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping, Sequence, Set
from dataclasses import is_dataclass
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict
from pydantic.fields import FieldInfo


class NoDecode:
    """``Annotated[list[str], NoDecode]``: the variable's text is given to validation as it is."""


class SettingsConfigDict(ConfigDict, total=False):
    env_prefix: str
    case_sensitive: bool
    env_ignore_empty: bool


def _is_complex(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, (str, bytes)):
        return False
    origin = get_origin(annotation)
    target = origin if origin is not None else annotation
    if isinstance(target, type) and issubclass(target, (BaseModel, Mapping, Sequence, Set, tuple)):
        return not issubclass(target, (str, bytes))
    return is_dataclass(target)


def _union_members(annotation: Any) -> tuple[Any, ...] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return None


def _variable_names(name: str, field: FieldInfo, prefix: str) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, AliasPath):
        return []
    return [prefix + (field.alias or name)]


def environment_values(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``model`` the environment sets, by field name, decoded as described above."""
    config = model.model_config
    prefix = str(config.get("env_prefix") or "")
    sensitive = bool(config.get("case_sensitive", False))
    ignore_empty = bool(config.get("env_ignore_empty", False))
    environ = {
        (key if sensitive else key.lower()): value
        for key, value in os.environ.items()
        if not (ignore_empty and value == "")
    }
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        raw = None
        for variable in _variable_names(name, field, prefix):
            raw = environ.get(variable if sensitive else variable.lower())
            if raw is not None:
                break
        if raw is None:
            continue
        values[_input_key(name, field)] = _decoded(name, field, raw)
    return values


def _input_key(name: str, field: FieldInfo) -> str:
    """The key validation reads the field from: its (first string) alias, else its name."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = next((choice for choice in alias.choices if isinstance(choice, str)), None)
    if isinstance(alias, str):
        return alias
    return field.alias or name


def _decoded(name: str, field: FieldInfo, raw: str) -> Any:
    annotation = field.annotation
    if any(m is NoDecode or isinstance(m, NoDecode) for m in field.metadata):
        return raw
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        if any(m is NoDecode or isinstance(m, NoDecode) for m in metadata):
            return raw
        annotation = inner
    members = _union_members(annotation)
    if members is not None:
        if not any(_is_complex(m) for m in members):
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # a union may take the text itself (``str | list[str]``)
    if not _is_complex(annotation):
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f'error parsing value for field "{name}" from the environment: {exc}') from None


class BaseSettings(BaseModel):
    """A model whose fields default to their environment variables (see the module docstring)."""

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        extra="forbid", validate_default=True, case_sensitive=False, env_prefix="", env_ignore_empty=False
    )

    def __init__(self, /, **values: Any) -> None:
        super().__init__(**{**environment_values(type(self)), **values})
