"""Chat rendering shared by the ``transformers`` backend and the SFT data path.

Both must render a conversation the same way, or a model fine-tuned on transcripts would be
served prompts it never saw. Tool messages become user turns (small chat templates know no tool
role); content parts are joined to text. ``tokenizer`` is any Hugging Face tokenizer with a chat
template; nothing here imports transformers.
"""

from __future__ import annotations

from typing import Any

from .sequences import TokenSequence

#: End-of-turn tokens of common chat templates, honoured in addition to the model's EOS ids.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # multimodal content parts: keep the text
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as ``{role, content}`` text with roles every chat template knows."""
    return [{"role": m["role"] if m.get("role") in ("system", "user", "assistant") else "user",
             "content": message_text(m)} for m in messages]


def render(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    """The chat template's text for ``messages`` (already plain)."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                         tokenize=False)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no BOS/EOS added (templates put special tokens in the text)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> set[int]:
    """Ids that end a reply: the model's EOS ids and the template's end-of-turn token.

    The model's generation config wins over the tokenizer's ``eos_token``: SmolLM2's GGUF
    tokenizer reports ``<|im_start|>`` as EOS while its generation config says ``<|im_end|>``.
    """
    ids: set[int] = set()
    eos = getattr(generation_config, "eos_token_id", None)
    for value in eos if isinstance(eos, (list, tuple)) else [eos]:
        if isinstance(value, int):
            ids.add(value)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    if not ids and tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def transcript_sequence(tokenizer: Any, messages: list[dict[str, Any]], stop_ids: set[int]) -> TokenSequence:
    """A transcript tokenised with the chat template, mask 1 on each assistant reply.

    For SFT on transcripts of another policy (there are no sampled ids to keep). Each assistant
    reply's mask covers its content and its end-of-turn token, which the model must learn to
    emit; the template's newline after it and every other message get 0. The prompt is
    everything before the first reply (its generation header included). Pieces are tokenised
    separately at template boundaries, which sit at special tokens, so the ids equal what the
    backend feeds the model when it serves the same conversation.
    """
    plain = plain_messages(messages)
    first = next((i for i, m in enumerate(plain) if m["role"] == "assistant"), None)
    if first is None:
        raise ValueError("transcript has no assistant message")
    seq = TokenSequence(prompt_ids=encode(tokenizer, render(tokenizer, plain[:first], True)))
    done = render(tokenizer, plain[:first], True)
    for i in range(first, len(plain)):
        if plain[i]["role"] != "assistant":
            continue
        before = render(tokenizer, plain[:i], True)
        after = render(tokenizer, plain[:i + 1], False)
        if not before.startswith(done) or not after.startswith(before):
            raise ValueError(f"chat template does not render message {i} as an extension of the ones before")
        seq._extend(encode(tokenizer, before[len(done):]), 0)
        reply = encode(tokenizer, after[len(before):])
        cut = max((j for j, t in enumerate(reply) if t in stop_ids), default=len(reply) - 1)
        seq._extend(reply[:cut + 1], 1)
        seq._extend(reply[cut + 1:], 0)
        seq.turns.append(i)
        done = after
    return seq
