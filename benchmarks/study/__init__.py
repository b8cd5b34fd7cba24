"""The pooling study's parts: what runs (``data``, ``separation``, ``run``, ``results``) and what
renders (``render``, ``findings``, ``plots``). ``benchmarks/pooling_study.py`` is the command."""
