"""The research harness's driver: what the ``samora`` command (:mod:`samora.cli`, above this package) runs.

``sections`` (the run configuration's sections), ``run_config`` (reading them from YAML layers and
presets, their types and declared choices and bounds checked by :mod:`samora.config.rules`;
``config_checks`` the rules between fields and against the registries),
``pipeline`` (train, evaluate and analyse one run; ``model_loading`` loads its base model and adapters,
the bundled SmolLM2 through :mod:`samora.models.smollm2`), ``run_folder`` (numbered, resumable run
folders), ``report`` (a run's ``report.md``), ``logs`` (the ``samora`` logger), ``passthrough``
(``train.*`` keys handed to ``TrainingArguments``) and ``method_docs`` (``docs/methods.md`` from the method
registry). Nothing in the adapter library imports this package (``[tool.importlinter]`` in
``pyproject.toml``).
"""
