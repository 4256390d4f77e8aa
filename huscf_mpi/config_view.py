"""A validated config as plain read-only attributes, for ranks that do not import pydantic (issue 7).

Rank 0 validates the config (:mod:`huscf_mpi.config`) and hands the client ranks a
:class:`ConfigView` of it (:func:`huscf_mpi.config.view`, sent by ``roles/handover.py``). It
reads like the :class:`~huscf_mpi.config.Config` it was made from: every field
(``cfg.training.batch_size``), every derived property (``cfg.data.n_clients``,
``cfg.output_path``) and ``cfg.to_yaml()``, with the same values. It only has no validation,
so a client rank needs neither pydantic nor PyYAML (see :mod:`huscf_mpi.launch` for what that
saves). Like the models, it is frozen.
"""
from __future__ import annotations

from typing import Any


class ConfigView:
    """Read-only attributes of one config section (nested sections are views too).

    Parameters
    ----------
    values : field (and derived property) name -> value; ``dict`` values stay dicts
        (``data.domains``, per-client ``cuts``), sections are already :class:`ConfigView`.
    yaml : the whole config's ``Config.to_yaml()`` text (root view only), returned by
        :meth:`to_yaml`.
    """

    __slots__ = ("_values", "_yaml")

    def __init__(self, values: dict[str, Any], yaml: str | None = None):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_yaml", yaml)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # the slots themselves, before __setstate__ filled them
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"config has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"config is frozen: cannot set {name!r}")

    def __getstate__(self):
        return self._values, self._yaml

    def __setstate__(self, state) -> None:
        object.__setattr__(self, "_values", state[0])
        object.__setattr__(self, "_yaml", state[1])

    def __repr__(self) -> str:
        return f"ConfigView({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def to_yaml(self) -> str:
        """The config's YAML text, as rank 0's ``Config.to_yaml()`` gave it; ``AttributeError``
        on a section's view."""
        if self._yaml is None:
            raise AttributeError("to_yaml: only the whole config's view has its YAML text")
        return self._yaml
