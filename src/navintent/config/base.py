"""What every config dataclass shares: :class:`ConfigBase` (strict construction from dicts, plain-dict export, YAML
round trip), reading a YAML mapping with errors that name the file, YAML 1.1 exponent strings as floats, and the
validators that raise ``ValueError("<name> must be ..., got X")``."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

C = TypeVar("C", bound="ConfigBase")


def _to_plain(value: Any) -> Any:
    """Tuples -> lists and nested configs -> dicts, so YAML and torch's weights_only loader accept them."""
    if isinstance(value, ConfigBase):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


@dataclass
class ConfigBase:
    """Shared behaviour: strict construction from dicts, plain-dict export, YAML round trip."""

    # Fields holding nested configs: {field name: config class}; subclasses that nest override it.
    NESTED: ClassVar[dict[str, type[ConfigBase]]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.init]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, *, where: str = "") -> C:
        """Build from a dict; unknown or missing required keys raise ``ValueError`` naming them (and
        ``where``, e.g. a file); an invalid value raises the field's ``ValueError`` prefixed with ``where:``. A
        ``float`` field given a YAML 1.1 exponent string (``"1e-4"``) gets its number."""
        data = dict(data or {})
        loc = f" in {where}" if where else ""
        known = set(cls.field_names())
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys{loc}: {unknown}; known keys are {sorted(known)}")
        required = [
            f.name
            for f in fields(cls)
            if f.init and f.default is MISSING and f.default_factory is MISSING and f.name not in data
        ]
        if required:
            raise ValueError(f"{cls.__name__}{loc} is missing required keys {required}")
        kwargs = {}
        for f in fields(cls):
            if not f.init or f.name not in data:
                continue
            value = data[f.name]
            nested = cls.NESTED.get(f.name)
            if nested is not None and isinstance(value, dict):
                value = nested.from_dict(value, where=f"{where}:{f.name}" if where else f.name)
            elif f.type in _FLOAT_TYPES:
                value = yaml11_float(value)
            kwargs[f.name] = value
        try:
            return cls(**kwargs)
        except ValueError as err:  # a value check in __post_init__: name where the value came from
            if not where:
                raise
            raise ValueError(f"{where}: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_plain(getattr(self, f.name)) for f in fields(self) if f.init}

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load_yaml(cls: type[C], path: str | Path) -> C:
        return cls.from_dict(read_yaml_mapping(path), where=str(path))


# Float field annotations (strings, as this module postpones annotations): YAML 1.1 strings convert.
_FLOAT_TYPES = (float, "float", "float | None")
# YAML 1.2 floats that YAML 1.1 (PyYAML) leaves as strings: an exponent without a dot or without a sign.
_YAML11_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def yaml11_float(value: Any) -> Any:
    """``"1e-4"`` (how PyYAML, a YAML 1.1 parser, reads ``1e-4``) -> ``1e-4``; any other value unchanged.

    Only exponent literals convert: other strings stay strings so the config's own check names them."""
    if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def read_yaml_mapping(path: str | Path, *, what: str = "config file") -> dict[str, Any]:
    """Parse a YAML file whose top level is a mapping (an empty file reads as ``{}``).

    Errors name ``what`` and the path: missing file (``FileNotFoundError``), invalid YAML or a non-mapping
    top level (``ValueError``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{what} not found: {path}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{what} {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


# Shared validators for every config dataclass of the package (``ValueError("<name> must be ..., got X")``).
def check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_non_negative_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def check_positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    _check_finite(name, value)


def _check_finite(name: str, value: float) -> None:
    """YAML's ``.inf`` passes ``> 0``; no setting means anything at infinity."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def check_non_negative_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    _check_finite(name, value)


def check_probability(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def as_tuple(name: str, value: Any) -> tuple:
    """``value`` (a list or tuple, e.g. from YAML) as a tuple. Raises ``ValueError`` naming ``name`` for anything
    else (a scalar where a list belongs: ``image_size: 32``)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {value!r}")
    return tuple(value)
