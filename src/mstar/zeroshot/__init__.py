"""Using a stage-1 model with few or no labels: zero-shot and few-shot slide classification, retrieval.

- :mod:`~mstar.zeroshot.prompts`: prompt files (CONCH / upstream schema) and class embeddings.
- :mod:`~mstar.zeroshot.zero_shot`: ``mstar zero-shot`` (patch top-j and slide-embedding scoring).
- :mod:`~mstar.zeroshot.few_shot`: ``mstar few-shot`` (text-guided prototypes, SimpleShot, linear probe).
- :mod:`~mstar.zeroshot.retrieve`: ``mstar retrieve`` (slide↔report, slide↔gene, slide→slide).

See ``docs/zeroshot.md``.
"""
