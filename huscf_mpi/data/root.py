"""Where the datasets live (SPEC §4): command-line option, environment variable, or ``./data``."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

ENV_VAR = "HUSCF_DATA_ROOT"
DEFAULT = Path("data")


def resolve_data_root(option: str | Path | None = None, source: str = "--data-root") -> Path:
    """Return the data root folder, laid out like the shared data (``mnist/``, ``kmnist/``, ...).

    Parameters
    ----------
    option : str or Path or None
        The ``--data-root`` value. When None (or empty), the environment variable
        ``HUSCF_DATA_ROOT`` is used, and when that is unset or empty, ``./data`` relative to the
        current directory.
    source : str, default "--data-root"
        Where ``option`` came from, for the error message (e.g. ``"data.root in the config"``).

    Returns
    -------
    Path
        The absolute path of the folder (symlinks resolved).

    Raises
    ------
    DataError
        If the chosen path is not a directory; the message says which source it came from.
    """
    if option is not None and str(option) != "":
        path = Path(option)
    elif os.environ.get(ENV_VAR):
        path, source = Path(os.environ[ENV_VAR]), f"environment variable {ENV_VAR}"
    else:
        path, source = DEFAULT, "the default ./data"
    path = path.expanduser()
    if not path.is_dir():
        raise DataError(
            f"data root {path} (from {source}) is not a directory: pass --data-root DIR or set "
            f"{ENV_VAR} to the folder holding mnist/, fashion_mnist/, cifar10/, medmnist/, fsdd/, ..."
        )
    return path.resolve()
