"""The typed, frozen objects :func:`sparseae.config.resolve_config` returns.

A section is a read-only dict (``exp.training["chunks"]`` or ``exp["training"]["chunks"]``);
``to_dict()`` and ``copy.deepcopy`` give plain dicts of the same text, which Snakemake compares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def _refuse(self, *args, **kwargs):
    raise TypeError("a resolved config is read-only; change a copy (copy.deepcopy or to_dict())")


class FrozenDict(dict):
    """A dict that refuses every change; a copy of it is a plain dict."""

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __deepcopy__(self, memo) -> dict:
        return thaw(self)

    def __reduce__(self):
        return type(self), (dict(self),)


class FrozenList(list):
    """A list that refuses every change; a copy of it is a plain list."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse

    def __deepcopy__(self, memo) -> list:
        return thaw(self)

    def __reduce__(self):
        return type(self), (list(self),)


def freeze(value: Any) -> Any:
    """``value`` with every dict frozen (keys sorted, as YAML order must not matter) and every
    list frozen."""
    if isinstance(value, Mapping):
        return FrozenDict({key: freeze(value[key]) for key in sorted(value)})
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, editable deep copy of a frozen value."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value


class _Sections(Mapping):
    """Read access by key as well as by attribute; a copy is a plain dict."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def __deepcopy__(self, memo) -> dict:
        return self.to_dict()

    def to_dict(self) -> dict:
        """Plain, key-sorted dicts and lists."""
        return thaw(self)

    @classmethod
    def of(cls, mapping: Mapping):
        """The object of a resolved mapping (every section present)."""
        return cls(**{name: freeze(mapping[name]) for name in cls.__dataclass_fields__})


_frozen = dataclasses.dataclass(frozen=True, eq=False, repr=False)


@_frozen
class Experiment(_Sections):
    """One experiment with defaults filled (schema ``$defs/experiment``)."""

    cnn: Mapping | None
    dataset: Mapping
    description: str
    evaluation: Mapping
    gradcheck: Mapping
    model: Mapping
    optimizer: Mapping
    patches: Mapping
    resources: Mapping
    seed: int
    training: Mapping


@_frozen
class StackedExperiment(_Sections):
    """One stacked experiment with defaults filled (schema ``$defs/stacked_experiment``)."""

    dataset: Mapping
    description: str
    finetuning: Mapping
    gradcheck: Mapping
    layers: Mapping
    optimizer: Mapping
    pretraining: Mapping
    resources: Mapping
    seed: int
    softmax: Mapping


@_frozen
class Sweep(_Sections):
    """One sweep as written, defaults filled (schema ``$defs/sweep``)."""

    base: str
    grid: Mapping
    overrides: Mapping


@_frozen
class Config(_Sections):
    """A whole resolved config: ``run`` names experiments (sweeps replaced by their members),
    ``run_stacked`` stacked experiments, ``sweep_members`` maps a sweep to its members."""

    diagnostics: Mapping
    experiments: Mapping[str, Experiment]
    run: list
    run_stacked: list
    sources: Mapping
    stacked_experiments: Mapping[str, StackedExperiment]
    sweep_members: Mapping[str, list]
    sweeps: Mapping[str, Sweep]
    tracking: Mapping

    @classmethod
    def of(cls, mapping: Mapping) -> Config:
        """The config of a resolved mapping, every experiment and sweep typed."""
        typed = {"experiments": Experiment, "stacked_experiments": StackedExperiment}
        typed["sweeps"] = Sweep
        fields = {name: freeze(mapping[name]) for name in cls.__dataclass_fields__}
        for name, kind in typed.items():
            fields[name] = FrozenDict({k: kind.of(v) for k, v in fields[name].items()})
        return cls(**fields)
