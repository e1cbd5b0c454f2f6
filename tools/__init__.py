"""Development tools run from a checkout (``python -m tools.NAME`` from the repository root).

Not part of the installed package: ``pyproject.toml`` installs only ``vaebench``, ``vae_zoo``,
``metrics`` and ``benchmarks``.
"""
