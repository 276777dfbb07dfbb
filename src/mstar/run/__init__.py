"""The run layer every stage stands on: settings, run folders, and the one training harness.

- :mod:`~mstar.run.config`: :class:`RunConfig`, defaults < YAML < ``--set``, typed and checked.
- :mod:`~mstar.run.folder`: :func:`open_run`, the one run-folder writer (``config.yaml``, ``run.json`` with
  the fingerprint of settings and inputs, finished / resume / changed-inputs checks).
- :mod:`~mstar.run.harness`: :func:`fit`, the Lightning harness; :mod:`~mstar.run.module`: :class:`RunModule`,
  named loss terms and the per-epoch log; :mod:`~mstar.run.callbacks`: resume point and best-epoch selection.

Nothing here knows about slides, models or tasks; every stage imports from here, never the reverse.
"""

from mstar.run.config import RunConfig, parse_override
from mstar.run.folder import RunFolder, open_run

__all__ = ["RunConfig", "RunFolder", "open_run", "parse_override"]
