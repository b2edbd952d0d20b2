"""The command line's ``KEY=VALUE`` arguments (ultralytics' style): parsed and checked against ultralytics' names
and type rules without importing it, and kept apart from the options and arguments typer parsed."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import typer
import yaml

SET_BY_MTTRAIN = ("task", "mode")  # KEY=VALUE keys mttrain decides itself


def _value(text: str) -> Any:
    """A KEY=VALUE value as ultralytics' command line reads it: YAML scalars and lists, ``none`` is None."""
    if text == "" or text.lower() in ("none", "null"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(pairs: list[str], allowed: frozenset[str] | None = None, command: str = "fit") -> dict[str, Any]:
    """``["epochs=3", "imgsz=160"]`` -> ``{"epochs": 3, "imgsz": 160}``, checked against ultralytics' names and type
    rules without importing it; unknown, mistyped and ``allowed``-excluded keys raise ArgumentError."""
    from mttrain import _ultralytics_cfg
    from mttrain.errors import ArgumentError

    known = set(_ultralytics_cfg.defaults())
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ArgumentError(f"expected KEY=VALUE, found {pair!r} (options start with --; see mttrain {command} --help)")
        key, text = pair.split("=", 1)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ArgumentError(f"unknown argument {key!r}{hint}")
        if key in SET_BY_MTTRAIN:
            raise ArgumentError(f"{key}= is set by mttrain (task multitask, mode {command})")
        if allowed is not None and key not in allowed:
            raise ArgumentError(f"mttrain {command} does not take {key}= (it takes {', '.join(sorted(allowed))})")
        if key in out:
            raise ArgumentError(f"{key}= is given twice: give it once")
        value = _value(text)
        problem = _ultralytics_cfg.type_problem(key, value)
        if problem:
            raise ArgumentError(problem)
        out[key] = value
    return out


def refuse_twins(ctx: typer.Context, overrides: dict[str, Any], keys: dict[str, str] | None = None) -> None:
    """Refuse a KEY=VALUE whose key the command also has as an option or argument, both given (``--epochs 1
    epochs=2``): which one wins would be a guess. ``keys`` maps a parameter to its ultralytics key when the
    names differ."""
    from mttrain.errors import ArgumentError

    keys = keys or {}
    for param in ctx.command.params:
        key = keys.get(param.name, param.name)
        source = ctx.get_parameter_source(param.name)  # click's ParameterSource (typer vendors click)
        if key not in overrides or source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        given = param.opts[0] if param.param_type_name == "option" else f"the {param.name.upper()} argument"
        raise ArgumentError(f"{key} is given twice ({given} and {key}={overrides[key]}): give it once")


def pairs_from_positionals(ctx: typer.Context, **values: Any) -> list[Any]:
    """typer fills free positional arguments with whatever comes first, KEY=VALUE tokens included
    (``mttrain predict model=best.pt source=img/`` puts both pairs in MODEL and SOURCE): hand such tokens back
    to the KEY=VALUE list, in order, and return the arguments' values (None where a pair was taken back)."""
    import re

    from mttrain import _ultralytics_cfg

    known, moved, out = set(_ultralytics_cfg.defaults()), [], []
    for name, value in values.items():
        text = None if value is None else str(value)
        match = re.match(r"^([A-Za-z_]\w*)=", text or "")
        if match and match.group(1) in known and not Path(text).exists():
            moved.append(text)
            source = ctx.get_parameter_source(name)  # click's ParameterSource (typer vendors click)
            ctx.set_parameter_source(name, type(source).DEFAULT)  # not given as an argument after all
            value = None
        out.append(value)
    ctx.args[:0] = moved
    return out


def from_keys(overrides: dict[str, Any], key: str, value: Any, what: str, command: str) -> str:
    """An argument given as the fork's ``KEY=VALUE`` (``model=best.pt``, ``source=images/``) or positionally,
    moved out of ``overrides``; refuse_twins has refused both. Missing from both: one clear error."""
    from mttrain.errors import ArgumentError

    if key in overrides:
        value = overrides.pop(key)
    if value is None or str(value) == "":
        raise ArgumentError(f"mttrain {command}: missing {what}: give it as an argument or as {key}=...")
    return str(value)
