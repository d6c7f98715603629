"""Procedural generation throughput: verified tasks per minute and acceptance rate.

Generates N tasks over all seeds (round-robin) into a temporary folder with the real ``local``
sandbox, and prints wall time, verified tasks/min, acceptance rate, rejection reasons and the
modality mix. Targets: >= 60 verified tasks/min, >= 90% acceptance (SandMLE reports 76% yield).

    .venv/bin/python benchmarks/generation_throughput.py [--n 60] [--workers 2] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from sandmle.generators.procedural import ProceduralConfig, ProceduralGenerator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="sandmle-genbench-"))
    t0 = time.perf_counter()
    first = None
    outcomes = []
    for o in ProceduralGenerator(ProceduralConfig(workers=args.workers)).generate(out, args.n, seed=args.seed):
        first = first or time.perf_counter()
        outcomes.append(o)
    wall = time.perf_counter() - t0
    ok = [o for o in outcomes if o.accepted]
    result = {
        "n_requested": args.n, "accepted": len(ok), "candidates": len(outcomes), "wall_s": round(wall, 2),
        "startup_s": round((first or t0) - t0, 2),
        "verified_per_min": round(60 * len(ok) / wall, 1),
        "acceptance_rate": round(len(ok) / max(1, len(outcomes)), 3),
        "rejections": dict(Counter(o.reason for o in outcomes if not o.accepted)),
        "modality_mix": dict(Counter(o.modality for o in ok)),
        "metric_mix": dict(Counter(o.metric for o in ok)),
        "mean_train_rows": round(sum(o.n_train for o in ok) / max(1, len(ok)), 1),
        "out": str(out),
    }
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
