"""The research harness's driver: the ``samora`` command and what it runs.

``cli`` (the command line), ``run_config`` (the YAML run configuration and its presets; ``coercion``
checks its values' types, ``config_checks`` their ranges and choices), ``pipeline`` (train, evaluate
and analyse one run; ``model_loading`` loads its base model and adapters), ``run_folder`` (numbered,
resumable run folders), ``report`` (a run's ``report.md``), ``logs`` (the ``samora`` logger),
``passthrough`` (``train.*`` keys handed to ``TrainingArguments``), ``smollm2`` (the bundled
SmolLM2-135M, converted from its GGUF file) and ``method_docs`` (``docs/methods.md`` from the method
registry). Nothing in the adapter library imports this package (``[tool.importlinter]`` in
``pyproject.toml``).
"""
