"""Text families: keyword-driven documents (one label, several labels) and text with metadata.

Documents are written in the task domain's voice: sentence frames (``domains.FRAMES``) filled with
the domain's own words (``terms``; never a word the task's description can contain): filler
words, the hidden keywords of each class or label at a per-task signal rate, and distractor
keywords of other classes. Which domain words are which class's keywords is the hidden rule.
Without a domain (``terms=None``) the scikit-learn dataset descriptions' vocabulary is used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .domains import document, reserved_words
from .rules import HiddenRule, draw, draw_int, make_targets, noisy_labels, sample_labels, standardize
from .seeds import SeedTask
from .sources import descr_vocabulary
from .synth import NoiseConfig, Parts
from .synth_tabular import KIND


def _vocabulary(rng: np.random.Generator, terms: tuple[str, ...] | None = None,
                domain: str | None = None) -> np.ndarray:
    """The task's words in a random order: its domain's terms, or the descriptions' vocabulary."""
    reserved = reserved_words(domain)
    pool = terms if terms else descr_vocabulary()
    return rng.permutation(np.array(sorted({w for w in pool if w not in reserved})))


def _keyword_count(n_words: int, K: int, rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    """Keywords per class: from ``lo_hi``, leaving at least 8 filler words."""
    return max(2, min(int(rng.integers(lo_hi[0], lo_hi[1] + 1)), (n_words - 8) // K))


DISTRACTOR_RATE = 0.06


def _document(rng: np.random.Generator, filler: np.ndarray, inserts: list[tuple[np.ndarray, float]],
              distractors: list[np.ndarray], distractor_rate: float = DISTRACTOR_RATE) -> tuple[list[str], np.ndarray]:
    """Filler words with each (keywords, rate) inserted at its rate and a few distractor keywords;
    returns the words and how many came from each distractor list."""
    length = int(rng.integers(8, 24))
    tokens = list(rng.choice(filler, length))
    counts = np.zeros(max(1, len(distractors)), int)
    for pos in range(length):
        r = rng.random()
        for words, rate in inserts:
            if r < rate:
                tokens[pos] = str(rng.choice(words))
                break
            r -= rate
        else:
            if r < distractor_rate and distractors:
                j = int(rng.integers(len(distractors)))
                tokens[pos] = str(rng.choice(distractors[j]))
                counts[j] += 1
    return [str(t) for t in tokens], counts


def _bayes_posterior(counts: np.ndarray, lengths: np.ndarray, signal: list[float], prior: np.ndarray) -> np.ndarray:
    """P(class | keyword counts) under the generating process (the oracle of one-label text):
    a position holds class j's keyword with rate signal_c [j = c] + d / K, else a filler word."""
    K = len(signal)
    sig = np.array(signal)
    rate = np.eye(K) * sig[:, None] + DISTRACTOR_RATE / K  # rate[c, j]
    logp = np.log(prior)[None, :] + counts @ np.log(rate).T
    logp += (lengths - counts.sum(1))[:, None] * np.log(1 - sig - DISTRACTOR_RATE)[None, :]
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def text_parts(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
               noise: NoiseConfig, terms: tuple[str, ...] | None = None, domain: str | None = None) -> Parts:
    """Documents made from their clean label(s): one class, or several labels (jigsaw-like)."""
    n = n_train + n_test
    kind = KIND[seed.task_type]
    K = draw_int(rng, seed.n_classes) if kind != "binary" else 2
    words = _vocabulary(rng, terms, domain)
    n_kw = _keyword_count(len(words), K, rng, (5, 8) if terms is None else (3, 6))
    keywords = [words[i * n_kw:(i + 1) * n_kw] for i in range(K)]
    filler = words[K * n_kw:]
    y_clean = sample_labels(kind, rng, n, K, seed.minority_share)
    signal = [draw(rng, (0.04, 0.13)) for _ in range(K)]
    docs, counts, lengths = [], [], []
    kw_sets = [set(map(str, kw)) for kw in keywords]
    for row in range(n):
        if kind == "multilabel":
            active = [k for k in range(K) if y_clean[row, k]]
            inserts = [(keywords[k], signal[k] / max(1, len(active)) * 1.5) for k in active]
        else:
            inserts = [(keywords[int(y_clean[row])], signal[int(y_clean[row])])]
        tokens, _ = _document(rng, filler, inserts, keywords)
        docs.append(document(rng, tokens))
        counts.append([sum(w in kw_sets[k] for w in tokens) for k in range(K)])  # own inserts included
        lengths.append(len(tokens))
    rate = draw(rng, noise.label_noise)
    targets = noisy_labels(kind, rng, y_clean, K, rate)
    if kind != "multilabel":  # the oracle reads the keyword counts as the generator wrote them
        prior = np.bincount(y_clean, minlength=K) / n
        post = _bayes_posterior(np.array(counts), np.array(lengths), signal, np.clip(prior, 1e-3, 1))
        post = (1 - rate) * post + rate / K
        targets.oracle = post[:, 1] if kind == "binary" else post
    rule = {"core": {"keywords": [list(map(str, kw)) for kw in keywords]},
            "signal_rate": [round(s, 4) for s in signal], **targets.info}
    # The signal a careful solution finds: how often each class's words occur (per document length).
    derived = np.column_stack([np.array(counts, float), np.log(np.array(lengths, float))])
    return Parts(X=pd.DataFrame({"text": np.array(docs, dtype=object)}), targets=targets, rule=rule,
                 n_train=n_train, n_outputs=K, derived=derived)


def _metadata(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Request metadata with real-looking marginals, and the standardized rule inputs behind them."""
    age = rng.lognormal(5.0, 1.2, n)
    comments = rng.negative_binomial(1, 0.02, n)
    karma = rng.normal(0, 1, n) * rng.lognormal(4, 1.5, n)
    hour = rng.integers(0, 24, n)
    subreddits = rng.poisson(rng.uniform(2, 25), n)
    edited = (rng.random(n) < 0.15).astype(int)
    X = pd.DataFrame({"f_age": np.round(age, 1), "f_comments": comments, "f_karma": np.round(karma, 0),
                      "f_hour": hour, "f_subreddits": subreddits, "f_edited": edited})
    inputs = np.column_stack([np.log1p(age), np.log1p(comments), np.sign(karma) * np.log1p(np.abs(karma)),
                              np.sin(2 * np.pi * hour / 24), np.log1p(subreddits), edited])
    return X, standardize(inputs)


def text_meta_parts(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
                    noise: NoiseConfig, terms: tuple[str, ...] | None = None, domain: str | None = None) -> Parts:
    """A request text whose hidden tone matters, plus metadata columns the rule also reads."""
    n = n_train + n_test
    X, inputs = _metadata(rng, n)
    tone = rng.normal(0, 1, n)
    A = np.column_stack([inputs, tone])
    relevant = [A.shape[1] - 1] + [int(c) for c in rng.permutation(inputs.shape[1])[:draw_int(rng, (1, 3))]]
    rule = HiddenRule.sample(rng, A.shape[1], 1, relevant=relevant)
    rule.transforms[0] = str(rng.choice(["linear", "tanh"]))  # the tone reads one way: warmer is better or worse
    targets = make_targets(KIND[seed.task_type], rng, rule.scores(A), latent_weight=draw(rng, noise.latent_weight),
                           label_noise=draw(rng, noise.label_noise), shares=seed.minority_share)
    words = _vocabulary(rng, terms, domain)
    n_kw = _keyword_count(len(words), 2, rng, (6, 9))
    warm, cold, filler = words[:n_kw], words[n_kw:2 * n_kw], words[2 * n_kw:]
    base = draw(rng, (0.12, 0.25))
    sig = 1 / (1 + np.exp(-1.5 * tone))
    docs, tone_seen = [], []
    warm_set, cold_set = set(map(str, warm)), set(map(str, cold))
    for p in sig:
        tokens = _document(rng, filler, [(warm, base * p), (cold, base * (1 - p))], [], 0.0)[0]
        docs.append(document(rng, tokens))
        tone_seen.append((sum(w in warm_set for w in tokens) - sum(w in cold_set for w in tokens)) / len(tokens))
    X["text"] = np.array(docs, dtype=object)
    # The signals a careful solution finds: the metadata on the rule's scale (log counts, the
    # hour's cycle) and the text's tone read from its warm and cold words.
    derived = rule.basis(np.column_stack([inputs, standardize(np.array(tone_seen)[:, None])]))
    core = {**rule.describe(), "tone_keywords": [list(map(str, warm)), list(map(str, cold))]}
    return Parts(X=X, targets=targets, rule={"core": core, **targets.info}, n_train=n_train, n_outputs=2,
                 derived=derived)
