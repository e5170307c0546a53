"""``samora serve``: any trained adapter over OpenAI's API, the task from each request's ``model``,
requests for different tasks decoded in one batch (see docs/serving.md).

- :mod:`samora.serve.command`: the command's options (no heavy imports) and its start;
- :mod:`samora.serve.loading`: what is loaded where (tokenizer in the HTTP process, model in the worker);
- :mod:`samora.serve.server`: the LitServe spec (endpoints) and API (inference worker);
- :mod:`samora.serve.requests`: request bodies, routing to a task, limits;
- :mod:`samora.serve.generation` and :mod:`samora.serve.streaming`: mixed-task batched decoding;
- :mod:`samora.serve.responses`: OpenAI's response bodies and streamed chunks.
"""
