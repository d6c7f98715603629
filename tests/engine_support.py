"""What the engine backends' tests share: transformers' own logprobs of a sampled reply."""

from __future__ import annotations


def reference_logprobs(hf_model, prompt_ids, token_ids, temperature=1.0):
    """log_softmax(logits / temperature) of ``token_ids`` after ``prompt_ids``, by transformers."""
    import torch

    with torch.no_grad():
        logits = hf_model(torch.tensor([prompt_ids + token_ids])).logits[0, len(prompt_ids) - 1:-1].float()
    logp = torch.log_softmax(logits / temperature, -1)
    return logp[torch.arange(len(token_ids)), torch.tensor(token_ids)].tolist()
