"""The data pipeline, one module per step.

- ``sources``: local paths, file and hub readers, text decoding, cell cleaning;
- ``layouts``: which layout a file holds, and each row as chat messages (``Example``);
- ``render``: the chat template, tokenization and response-only labels;
- ``prepare``: split, preflight figures, trainability checks, task balancing, and the two
  entry points a run calls: ``load_examples`` and ``prepare``;
- ``types``: the records passed between them.
"""
