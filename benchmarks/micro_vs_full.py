"""Per-step speed-up of micro-scale over full-scale tasks (SandMLE reports 13.7x).

For each seed family: one procedurally generated micro task (its real train.csv, 50-200 rows)
and a full-size version of the *same* task (train rows resampled with replacement to --full-rows
rows, numeric features jittered by 1% of their std; labels travel with their rows, so the hidden
rule is unchanged). The same reference solution script (impute/one-hot or TF-IDF, then a
100-tree random forest, predict, write submission.csv) runs as one fresh ``python solution.py``
step, as an agent's code-execution step would; median wall time over --reps runs each.

    .venv/bin/python benchmarks/micro_vs_full.py [--full-rows 20000] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sandmle.generators.seeds import all_seeds
from sandmle.generators.synth import synthesize
from sandmle.generators.verify import public_info

SOLUTION = r'''
import json, sys, numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder
from sklearn.pipeline import make_pipeline
info = json.loads(open("info.json").read())
train, test = pd.read_csv("train.csv"), pd.read_csv("test.csv")
X, y = train.drop(columns=[info["id_column"], info["label_column"]]), train[info["label_column"]]
Xt = test.drop(columns=[info["id_column"]])
if info["modality"] == "text":
    prep = TfidfVectorizer(max_features=2000); A, At = prep.fit_transform(X["text"]), prep.transform(Xt["text"])
else:
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    prep = ColumnTransformer([("n", SimpleImputer(), [c for c in X.columns if c not in cats])]
                             + ([("c", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                     OneHotEncoder(handle_unknown="ignore")), cats)] if cats else []))
    A, At = prep.fit_transform(X), prep.transform(Xt)
reg = info["task_type"] in ("regression", "forecasting")
model = (RandomForestRegressor if reg else RandomForestClassifier)(100, random_state=0, n_jobs=1).fit(A, y)
pd.DataFrame({info["id_column"]: test[info["id_column"]], "pred": model.predict(At)}).to_csv("submission.csv", index=False)
'''


def _upsample(train: pd.DataFrame, rows: int, rng: np.random.Generator, skip: set[str]) -> pd.DataFrame:
    big = train.iloc[rng.integers(0, len(train), rows)].reset_index(drop=True)
    for c in big.columns:
        if c not in skip and pd.api.types.is_numeric_dtype(big[c]):
            big[c] = big[c] + rng.normal(0, 0.01 * (train[c].std() or 1.0), rows)
    big["id"] = np.arange(rows)
    return big


def _time_step(folder: Path, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "solution.py"], cwd=folder, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full-rows", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    families: dict[str, object] = {}
    for seed in all_seeds():
        families.setdefault(seed.family, seed)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="sandmle-microfull-"))
    for family, seed in families.items():
        cand = synthesize(seed, np.random.default_rng([0, 1]), 150, 100)
        info = public_info(cand)
        label = info["label_column"]
        for scale, train in (("micro", cand.train),
                             ("full", _upsample(cand.train, args.full_rows, np.random.default_rng(1),
                                                {"id", label}))):
            d = work / family / scale
            d.mkdir(parents=True)
            train.to_csv(d / "train.csv", index=False)
            cand.test.to_csv(d / "test.csv", index=False)
            (d / "info.json").write_text(json.dumps(info))
            (d / "solution.py").write_text(SOLUTION)
        micro, full = _time_step(work / family / "micro", args.reps), _time_step(work / family / "full", args.reps)
        rows.append({"family": family, "seed": seed.name, "micro_rows": len(cand.train),
                     "full_rows": args.full_rows, "micro_step_s": round(micro, 3),
                     "full_step_s": round(full, 3), "speedup": round(full / micro, 1)})
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'family':20} {'micro s':>8} {'full s':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['family']:20} {r['micro_step_s']:8.3f} {r['full_step_s']:8.3f} {r['speedup']:6.1f}x")
    print(f"median ratio: {statistics.median(r['speedup'] for r in rows):.1f}x")


if __name__ == "__main__":
    main()
