"""The benchmark: datasets, the runner, the report and the ``vaebench`` command line."""
