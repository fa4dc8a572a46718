"""The frozen objects :func:`sparseae.config.resolve_config` returns.

Each is a read-only dict whose keys also read as attributes (``exp.training["chunks"]`` or
``exp["training"]["chunks"]``); ``to_dict()`` and ``copy.deepcopy`` give plain dicts of the
same text, which Snakemake compares. The schema, not a field list here, names the sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _refuse(self, *args, **kwargs):
    raise TypeError("a resolved config is read-only; change a copy (copy.deepcopy or to_dict())")


class _Frozen:
    """Refuses every change; ``copy.deepcopy`` gives plain values, a pickle (Snakemake's script
    preamble) the same frozen type."""

    __setitem__ = __delitem__ = __ior__ = __iadd__ = __imul__ = clear = pop = _refuse
    popitem = setdefault = update = append = extend = insert = remove = sort = reverse = _refuse

    def __deepcopy__(self, memo):
        return thaw(self)

    def __reduce__(self):
        return type(self), ((list if isinstance(self, list) else dict)(self),)


class FrozenDict(_Frozen, dict):
    """A dict that refuses every change; a copy of it is a plain dict."""


class FrozenList(_Frozen, list):
    """A list that refuses every change; a copy of it is a plain list."""


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


class Section(FrozenDict):
    """A frozen dict whose keys read as attributes too; setting an attribute is refused."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a resolved config is read-only; cannot set {name!r}")

    def to_dict(self) -> dict:
        """Plain, key-sorted dicts and lists."""
        return thaw(self)


class Experiment(Section):
    """One experiment with defaults filled (schema ``$defs/experiment``)."""


class Config(Section):
    """A whole resolved config: ``run`` names experiments (sweeps replaced by their members),
    ``run_stacked`` stacked experiments, ``sweep_members`` maps a sweep to its members; each
    experiment, stacked experiment and sweep a :class:`Section`, each experiment an
    :class:`Experiment`."""

    @classmethod
    def of(cls, mapping: Mapping) -> Config:
        """The config of a resolved mapping, every experiment and sweep typed."""
        fields = dict(freeze(mapping))
        for name in ("experiments", "stacked_experiments", "sweeps"):
            kind = Experiment if name == "experiments" else Section
            fields[name] = FrozenDict({k: kind(v) for k, v in fields[name].items()})
        return cls(fields)
