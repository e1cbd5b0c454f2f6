"""The runner: a suite's runs planned into packs, trained, evaluated and recorded, locally or on a cluster.

The modules by layer. No import cycle; only the backends (and the CLI) import the sweep.

Configuration
    ``suite``      TOML suites expanded into run specs.
    ``spec``       ``RunSpec``, everything that determines one run's numbers; its hash is the run id.
    ``settings``   ``RunTraining``, the loop's settings, checked; the optimiser registry
                   (``OPTIMIZERS``, an extension point) and the precision resolver.
    ``protocol``   the choices that build a run's model and loss, compared with the study's.
Planning
    ``plan``       packs (which runs may train together: ``pack_key``; how many: ``pack_size``)
                   and shards.
    ``state``      which runs are owed (``run_states``), the ``--force`` promise, the sweep's tally.
    ``estimate``   the plan's cost, from timed steps of the real loop.
    ``display``    plans, estimates and finished runs as printed.
Executing one pack
    ``execute``    ``run_pack``: claim -> train -> evaluate -> record; ``record_of``, the one mapping
                   to a ``RunRecord``; ``rescore`` for ``vaebench eval``.
    ``train``      the one training loop and its networks behind the ``Network`` protocol (an
                   extension point: ``SingleNetwork``, ``StackedNetwork``).
    ``evaluate``   scoring a trained model with the metrics; each grid point encoded once, the
                   whole grid ahead where the metrics reach most of it (the same codes).
    ``encoding``   the encoder's forward passes as the records need them; on a CPU as sub-passes
                   side by side, one thread each, checked bit for bit against whole passes.
    ``first_conv`` a 1-channel first convolution and its ReLU in oneDNN's order (the same codes,
                   faster on a CPU), checked against PyTorch's per input shape.
    ``blocked_convs`` the leading convolutions on oneDNN's blocked tensors (the same codes, no
                   reorders), checked against the NCHW layers per input shape and threads.
    ``data``       datasets and training images loaded once per process.
    ``claims``     a lock per run, so processes sharing an output directory never train one twice.
    ``progress``   bars or plain lines while a pack trains.
Records
    ``records``    ``RunRecord``, the one record type, and the output directory's layout.
    ``provenance`` machine, CPU, git and library versions, for records and speed reports.
Running a plan
    ``sweep``      the loop over a plan's packs in this process.
    ``backends``   where a plan runs: a registry (an extension point; ``local`` built in).
    ``slurm``      the ``slurm`` backend: one submitit array task per pack, each calling ``run_pack``.
    ``status``     ``vaebench status``: per suite, what is recorded, failed, claimed and pending.
    ``udr``        UDR over groups of recorded runs.
"""
