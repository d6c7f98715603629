"""sandmle.plugins: integrations with heavy or external parts, one sub-package per integration.

Each sub-package is its own entry point in the ``sandmle`` group (see ``pyproject.toml``), loaded
exactly like a third-party plugin: ``openai`` (OpenAI-compatible and litellm backends), ``hf``
(the local ``transformers`` backend and model loading), ``trl`` (``sft`` and ``grpo`` trainers),
``verl`` (the veRL trainer), ``docker`` (the docker sandbox), ``ray`` (the ray executor) and
``mlebench`` (MLE-bench and MLE-Dojo task sources). A sub-package may import any room and the
integrations it builds on (``trl`` loads its policy through ``hf``); no room imports a plugin.
"""
