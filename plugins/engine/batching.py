"""Which waiting requests the ctranslate2 engine generates together.

CTranslate2 encodes the prompts of a batch in one pass only up to the *shortest* prompt; every
token a longer prompt has beyond that goes through the decoding loop as a forced prefix, one
step of the whole batch per token (ctranslate2 4.x ``src/models/language_model.cc``,
``forward_length = min_prompt_length - 1``; the rest is ``update_sample_with_prefix`` in
``src/decoding.cc``). A batch of a 350-token and a 2,000-token prompt pays 1,650 batch steps
before its long row samples a token, where the two rows alone would have encoded their prompts
in one pass each (measured: a 300- and a 600-token prompt took 22 s to their first token, the
600-token prompt alone 1.5 s). An evaluation that mixed scaffolds (prompts of 350 to 2,000
tokens) ran at ~3 tokens/s on 2 CPU cores, against 16-26 for GRPO rollouts whose prompts were
alike; it also held ReAct prompts past the model's context window (17,323 tokens), now refused
(``ContextLengthError``), so how much of the ~3 tokens/s was the mixing is not separated.

So a batch is chosen by its estimated throughput, not by arrival alone: among the requests in
order of prompt length, the window that holds the oldest request (so nothing waits forever) and
maximises ``tokens / ((spread + new_tokens) * (1 + rows / step_rows))``, where ``spread`` is the
window's longest minus shortest prompt and ``step_rows`` the number of rows at which one decoding
step costs twice what a single row's does.
"""

from __future__ import annotations

from collections.abc import Sequence


def pick_batch(lengths: Sequence[int], limits: Sequence[int], *, max_batch: int, step_rows: float,
               max_prefill: float = float("inf")) -> list[int]:
    """Indices of the requests to generate together; request 0 (the oldest) is always among them.

    ``lengths`` are the prompts' token counts and ``limits`` each request's new-token limit, in
    arrival order. Returns at most ``max_batch`` indices, in arrival order. A batch of more than
    one row keeps ``rows * shortest_prompt**2`` within ``max_prefill``: the one-pass encoding
    holds attention scores of that many entries per head (8 rows of 1,200 tokens: 2.2 GB peak
    measured), so long prompts go in small batches.
    """
    if not lengths:
        return []
    by_length = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    home = by_length.index(0)
    best, best_rate = [0], -1.0
    for start in range(max(0, home - max_batch + 1), home + 1):
        for stop in range(home + 1, min(len(by_length), start + max_batch) + 1):
            window = by_length[start:stop]
            rows = len(window)
            if rows > 1 and rows * lengths[window[0]] ** 2 > max_prefill:
                continue
            spread = lengths[window[-1]] - lengths[window[0]]
            steps = spread + max(limits[i] for i in window)
            rate = sum(limits[i] for i in window) / (steps * (1 + rows / step_rows))
            if rate > best_rate:
                best, best_rate = window, rate
    return sorted(best)


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt of a batch starts with, leaving each at least one token of its own.

    The engine encodes that prefix once and copies its keys/values to every row (ctranslate2's
    ``static_prompt``), where it would otherwise encode it once per row: the rollouts of one GRPO
    group share their whole first prompt, and a scaffold's episodes share its system prompt.
    """
    if not prompts:
        return 0
    first, limit = prompts[0], min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def stepped_prompt_tokens(lengths: Sequence[int]) -> int:
    """Prompt tokens a batch feeds one decoding step at a time: each prompt beyond the shortest."""
    return sum(lengths) - len(lengths) * min(lengths) if lengths else 0
