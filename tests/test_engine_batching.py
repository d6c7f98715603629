"""How the ctranslate2 engine forms batches from waiting requests (``plugins/engine/batching.py``).

CTranslate2 4.x encodes a batch's prompts in one pass only up to the shortest one
(``src/models/language_model.cc``: ``forward_length = min_prompt_length - 1``) and forces the rest
of every longer prompt through the decoding loop one step at a time (``src/decoding.cc``,
``update_sample_with_prefix``), so prompts of very different lengths must not share a batch.
"""

from __future__ import annotations

import asyncio

from sandmle.core.records import Sampling
from sandmle.plugins.engine.batching import pick_batch, shared_prefix_length, stepped_prompt_tokens


def test_alike_prompts_fill_the_batch():
    assert pick_batch([600, 610, 590, 605, 620], [256] * 5, max_batch=8, step_rows=4) == [0, 1, 2, 3, 4]
    assert pick_batch([600] * 12, [256] * 12, max_batch=8, step_rows=4) == list(range(8))


def test_a_long_prompt_does_not_hold_up_a_short_one():
    # 1,650 forced steps at the cost of a two-row step vs two batches of one row each
    assert pick_batch([350, 2000], [256, 256], max_batch=8, step_rows=4) == [0]
    assert pick_batch([2000, 350], [256, 256], max_batch=8, step_rows=4) == [0]


def test_the_oldest_request_is_always_served_with_its_neighbours_in_length():
    lengths = [1200, 2000, 610, 1210, 620, 1990, 1190]
    assert pick_batch(lengths, [256] * 7, max_batch=8, step_rows=4) == [0, 3, 6]
    assert 0 in pick_batch([5000, 10, 11, 12, 13], [256] * 5, max_batch=4, step_rows=4)


def test_a_cheap_batch_step_tolerates_more_spread():
    """On a GPU (a step of 64 rows costs about what one row's does) a modest spread is worth it;
    on 2 CPU cores it is not."""
    lengths, limits = [500, 560, 620, 680], [256] * 4
    assert pick_batch(lengths, limits, max_batch=8, step_rows=64) == [0, 1, 2, 3]
    assert len(pick_batch(lengths, limits, max_batch=8, step_rows=0.25)) < 4


def test_long_prompts_go_in_batches_small_enough_to_encode():
    """A batch's one-pass encoding holds rows x length^2 attention scores per head (8 rows of
    1,200 tokens peaked at 2.2 GB). Within the budget they still batch."""
    long = [3800] * 8
    assert len(pick_batch(long, [256] * 8, max_batch=8, step_rows=4, max_prefill=8e6)) == 1
    assert len(pick_batch([1000] * 8, [256] * 8, max_batch=8, step_rows=4, max_prefill=8e6)) == 8
    assert len(pick_batch([2000] * 8, [256] * 8, max_batch=8, step_rows=4, max_prefill=8e6)) == 2
    assert pick_batch([9000], [256], max_batch=8, step_rows=4, max_prefill=8e6) == [0]  # alone, always


def test_shared_prefix_leaves_every_row_a_token_of_its_own():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4, 6]]) == 3
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0
    assert shared_prefix_length([]) == 0


def test_stepped_prompt_tokens():
    assert stepped_prompt_tokens([350, 2000, 400]) == 1650 + 50
    assert stepped_prompt_tokens([]) == 0


def test_the_engine_batches_prompts_of_similar_length(smollm2_ct2):
    """The real engine: four short prompts and two long ones asked at once come back from two
    batches, the short ones together and the long ones together, and no prompt token was fed
    through the decoding loop beyond each batch's own small spread."""
    short = [{"role": "user", "content": f"Name {i} fruits."} for i in range(4)]
    long_text = "Here is a long description of the orchard. " * 60
    long = [{"role": "user", "content": f"{long_text} Name {i} trees."} for i in range(2)]
    before = smollm2_ct2.stats.as_dict()

    async def ask():
        return await asyncio.gather(*[smollm2_ct2.complete([m], sampling=Sampling(max_tokens=4)) for m in short + long])

    results = asyncio.run(ask())
    after = smollm2_ct2.stats.as_dict()
    assert all(r.token_ids for r in results)
    assert after["batches"] - before["batches"] == 2
    assert after["stepped_prompt_tokens"] - before["stepped_prompt_tokens"] < 10
