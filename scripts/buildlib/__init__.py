"""The modules behind ``scripts/build`` (the Function Compute code packages, reproducibly, from locks).

``scripts/build`` is a thin launcher over :func:`buildlib.cli.main`. CI runs
``python3 scripts/build --check-locks`` with the system Python before any virtualenv exists,
so these modules use the standard library only (plus tomli or pip's vendored copy on
Python 3.10, and ``packaging`` or pip's vendored copy, both imported where needed).

* ``project``: where things are (``ROOT``, ``LOCKS``, the package), the runtimes and platform,
  the output names, and pyproject.toml read into a typed :class:`~buildlib.project.Project`.
* ``requirements``: PEP 508 requirements (``packaging``'s parser behind a protocol), names,
  and the Function Compute runtime's marker values.
* ``locks``: the lock variants, their fingerprints, ``uv pip compile`` and the offline check.
* ``install``: ``pip install --require-hashes`` of a lock for the target, then the check that
  it is exactly what the target's markers need.
* ``package``: copying the package, stripping, bytecode, and ``build`` of one runtime.
* ``zipping``: the reproducible zip and its sha256.
* ``cli``: the command line.

``ROOT`` and ``LOCKS`` are read from :mod:`buildlib.project` at call time (``project.ROOT``), so a
test can point the whole build at a copy of the project.
"""
