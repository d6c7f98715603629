"""Reference solvers: a standard scikit-learn portfolio, run inside the sandbox on public files.

One Python program (``solver_program``) trains every reference variant in a single sandbox
execution (a warm worker pays the imports once) and writes ``refsubs/<variant>.csv``. It does
what a standard AutoML pipeline does: impute and scale numeric columns, one-hot categoricals,
parse date columns, TF-IDF on text, downsampled pixels and colour histograms for image files,
band energies for sound files; then a constant baseline, linear models, k-NN, a tree, a forest,
gradient boosting and a cross-validated linear model. Multi-label and multi-target tasks get one
model per output (or one multi-output model where scikit-learn has it). The program sees only
public files and the public task structure passed in its header.
"""

from __future__ import annotations

import json

VARIANTS = ["sample", "constant", "linear", "knn", "tree", "forest", "gbt", "tuned"]

FEATURES = r'''
import os, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")

def media_features(folder, ids):
    """Standard features of the files <folder>/<id>.<ext>: an 8x8 grey and a 4x4 colour thumbnail
    plus colour statistics for images; band energies for sounds."""
    by_stem = {os.path.splitext(f)[0]: os.path.join(folder, f) for f in os.listdir(folder)}
    rows = []
    for i in ids:
        path = by_stem[str(i)]
        if path.endswith(".wav"):
            from scipy.io import wavfile
            rate, w = wavfile.read(path)
            w = w.astype(float) / 32768
            spec = np.abs(np.fft.rfft(w))
            bands = np.array_split(spec, 32)
            rows.append(np.concatenate([np.log1p([b.mean() for b in bands]), [w.std(), np.mean(np.abs(np.diff(np.sign(w)))) ]]))
        else:
            from PIL import Image
            img = np.asarray(Image.open(path).convert("RGB"), dtype=float) / 255
            grey = np.asarray(Image.open(path).convert("L").resize((8, 8)), dtype=float) / 255
            colour = np.asarray(Image.open(path).convert("RGB").resize((4, 4)), dtype=float) / 255
            q = np.minimum((img * 6).astype(int), 5)
            hist = [np.bincount(q[:, :, c].ravel(), minlength=6) / q[:, :, c].size for c in range(3)]
            rows.append(np.concatenate([grey.ravel(), colour.ravel(), img.mean(axis=(0, 1)), img.std(axis=(0, 1)),
                                        np.concatenate(hist)]))
    return np.array(rows)

def parse_dates(df):
    """Date-like string columns -> numeric day, weekday, month, day-of-year columns."""
    df = df.copy()
    for c in [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]:
        sample = df[c].dropna().astype(str).head(20)
        if len(sample) and sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
            d = pd.to_datetime(df[c], errors="coerce")
            df[c + "_day"] = (d - pd.Timestamp("2000-01-01")).dt.days
            df[c + "_weekday"] = d.dt.weekday.astype(str)
            df[c + "_month"] = d.dt.month
            df[c + "_doy"] = d.dt.dayofyear
            df = df.drop(columns=[c])
    return df
'''

_PROGRAM = r'''
import json
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

INFO = json.loads(__INFO__)
train, test = pd.read_csv("train.csv"), pd.read_csv("test.csv")
sample = pd.read_csv("sample_submission.csv")
idc, fmt, ycols = INFO["id_column"], INFO["submission"], INFO["label_columns"]
reg = fmt in ("value", "multi_value")
X, Xt = parse_dates(train.drop(columns=[idc, *ycols])), parse_dates(test.drop(columns=[idc]))
strings = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
texts = [c for c in strings if X[c].astype(str).str.len().mean() > 30]
cats = [c for c in strings if c not in texts]
nums = [c for c in X.columns if c not in texts + cats]
parts = [("num", make_pipeline(SimpleImputer(), StandardScaler()), nums)] if nums else []
if cats:
    parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                       OneHotEncoder(handle_unknown="ignore")), cats))
for c in texts:
    parts.append(("txt_" + c, TfidfVectorizer(min_df=2, max_features=400), c))
blocks, blocks_t = [], []
if parts:
    prep = ColumnTransformer(parts)
    blocks.append(sparse.csr_matrix(prep.fit_transform(X.fillna({c: "" for c in texts}))))
    blocks_t.append(sparse.csr_matrix(prep.transform(Xt.fillna({c: "" for c in texts}))))
if os.path.isdir("train"):
    M, Mt = media_features("train", train[idc]), media_features("test", test[idc])
    mu, sd = M.mean(0), M.std(0) + 1e-9
    blocks.append(sparse.csr_matrix((M - mu) / sd))
    blocks_t.append(sparse.csr_matrix((Mt - mu) / sd))
A, At = sparse.hstack(blocks).tocsr(), sparse.hstack(blocks_t).tocsr()
if not texts:
    A, At = A.toarray(), At.toarray()
Y = train[ycols].to_numpy()
S = 0

def models():
    if reg:
        return {"linear": Ridge(alpha=1.0), "knn": KNeighborsRegressor(10),
                "tree": DecisionTreeRegressor(max_depth=4, random_state=S),
                "forest": RandomForestRegressor(40, min_samples_leaf=2, random_state=S),
                "gbt": GradientBoostingRegressor(n_estimators=40, max_depth=3, subsample=0.8, random_state=S),
                "tuned": RidgeCV(alphas=[0.1, 1.0, 10.0, 100.0])}
    return {"linear": LogisticRegression(C=1.0, max_iter=100),
            "knn": KNeighborsClassifier(10), "tree": DecisionTreeClassifier(max_depth=4, random_state=S),
            "forest": RandomForestClassifier(40, min_samples_leaf=2, random_state=S),
            "gbt": GradientBoostingClassifier(n_estimators=40, max_depth=3, subsample=0.8, random_state=S),
            "tuned": LogisticRegressionCV(Cs=[0.03, 0.3, 3.0], cv=3, max_iter=100)}

def proba(model, y, classes):
    """Fit one output; probabilities in `classes` order (a single seen class: its prior)."""
    seen = np.unique(y)
    if len(seen) < 2:
        return np.tile([float(c == seen[0]) for c in classes], (At.shape[0], 1))
    model.fit(A, y)
    P = np.zeros((At.shape[0], len(classes)))
    for j, c in enumerate(model.classes_):
        P[:, list(classes).index(c)] = model.predict_proba(At)[:, j]
    return P

NATIVE = ("knn", "tree", "forest")  # scikit-learn fits these to several outputs at once

def predict(name, model):
    from sklearn.base import clone
    if fmt in ("value", "multi_value"):
        if name in NATIVE or name in ("linear", "tuned"):
            out = model.fit(A, Y.astype(float)).predict(At).reshape(At.shape[0], -1)
        else:
            out = np.column_stack([clone(model).fit(A, Y[:, k].astype(float)).predict(At) for k in range(Y.shape[1])])
        return np.maximum(out, 0) if INFO.get("positive") else out
    if fmt in ("proba_binary", "multilabel"):
        Yi = Y.astype(int)
        if name in NATIVE and Y.shape[1] > 1 and all(len(np.unique(Yi[:, k])) == 2 for k in range(Y.shape[1])):
            P = model.fit(A, Yi).predict_proba(At)
            return np.column_stack([p[:, list(c).index(1)] for p, c in zip(P, model.classes_)])
        return np.column_stack([proba(clone(model), Yi[:, k], [0, 1])[:, 1] for k in range(Y.shape[1])])
    classes = INFO["classes"]
    P = proba(model, Y[:, 0].astype(str), [str(c) for c in classes])
    if fmt == "label":
        return np.array(classes, dtype=object)[P.argmax(1)][:, None]
    return P

os.makedirs("refsubs", exist_ok=True)
def write(name, values):
    out = pd.DataFrame({idc: test[idc]})
    values = np.asarray(values)
    if fmt == "proba_multi":
        values = np.clip(values, 1e-4, 1)
        values = values / values.sum(axis=1, keepdims=True)
    for j, c in enumerate(INFO["target_columns"]):
        out[c] = values[:, j]
    out.to_csv(f"refsubs/{name}.csv", index=False)

sample.to_csv("refsubs/sample.csv", index=False)
if reg or fmt in ("proba_binary", "multilabel"):
    write("constant", np.tile(Y.astype(float).mean(0), (len(test), 1)))
elif fmt == "proba_multi":
    write("constant", np.tile([np.mean(Y[:, 0].astype(str) == str(c)) for c in INFO["classes"]], (len(test), 1)))
else:
    vals, counts = np.unique(Y[:, 0].astype(str), return_counts=True)
    write("constant", np.array([[vals[np.argmax(counts)]]] * len(test), dtype=object))
failed = {}
for name, model in models().items():
    try:
        write(name, predict(name, model))
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps({"failed": failed}))
'''


def solver_program(info: dict) -> str:
    """The reference-solver program for a task whose *public* structure is ``info``.

    ``info`` keys: id_column, label_columns (in train.csv), target_columns (of the submission),
    submission, task_type, modality, classes, positive. Nothing hidden may go in here.
    """
    return FEATURES + _PROGRAM.replace("__INFO__", repr(json.dumps(info)))
