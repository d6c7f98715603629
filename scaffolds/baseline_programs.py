"""The Python programs the scripted ``baseline`` policy writes (they run inside the sandbox).

They read only what any agent sees in its working directory (``train.csv``, ``test.csv``,
``sample_submission.csv`` and any ``train/`` / ``test/`` folders of files named by id) and infer
the submission format from the sample: the id is its first column; target columns found in
``train.csv`` are predicted directly (several of them for multi-label or multi-target tasks:
regression for many-valued numeric targets, the probability of 1 for float 0/1 sample values,
labels otherwise); class-named columns absent from ``train.csv`` are per-class probabilities of
the one train column missing from ``test.csv``. Image files become downsampled pixels plus colour
statistics, sound files band energies. Each program prints
``VALIDATION_METRIC <name> <value> <lower_is_better>`` on a hold-out split.

A program is fixed by its :class:`Choices`: the model family and its hyper-parameters and the
feature choices (parse dates or not, text with or without the other columns, image resolution).
The policy samples them per seed (:mod:`sandmle.scaffolds.baseline`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

EXPLORE = r'''
import os, pandas as pd
for f in sorted(os.listdir(".")):
    if f.endswith(".csv"):
        df = pd.read_csv(f)
        print(f"{f}: {df.shape[0]} rows x {df.shape[1]} cols; columns: {list(df.columns)[:20]}")
    elif os.path.isdir(f):
        files = sorted(os.listdir(f))
        print(f"{f}/: {len(files)} files, e.g. {files[:2]}")
sample = pd.read_csv("sample_submission.csv")
print("sample submission head:"); print(sample.head(3).to_string())
'''

FAMILIES = ("forest", "gbt", "linear", "knn", "constant")


@dataclass(frozen=True)
class Choices:
    """What one baseline program does; the defaults are the policy's greedy choices."""

    model: str = "forest"
    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 1
    learning_rate: float = 0.1
    C: float = 1.0
    k: int = 15
    parse_dates: bool = False
    text_with_columns: bool = False
    text_ngrams: int = 2
    image_grid: int = 8

    def describe(self) -> str:
        """A short plan line, as an agent would write it."""
        params = {"forest": f"{self.n_estimators} trees, max_depth={self.max_depth}, min_samples_leaf={self.min_samples_leaf}",
                  "gbt": f"{self.n_estimators} rounds, learning_rate={self.learning_rate}, max_depth={self.max_depth or 3}",
                  "linear": f"C={self.C}", "knn": f"k={self.k}", "constant": "the training prior"}[self.model]
        extras = [x for x, on in (("parsed dates", self.parse_dates), ("text plus columns", self.text_with_columns)) if on]
        return f"{self.model} ({params})" + (f" with {', '.join(extras)}" if extras else "")


_SOLVE = r'''
import json, os, warnings, numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CH = __CHOICES__
train, test = pd.read_csv("train.csv"), pd.read_csv("test.csv")
sample = pd.read_csv("sample_submission.csv")
idc, targets = sample.columns[0], list(sample.columns[1:])
if all(t in train.columns for t in targets):
    ycols, mode = targets, "direct"
else:  # per-class probability columns of the one label column test.csv lacks
    ycols, mode = [c for c in train.columns if c not in test.columns and c != idc][:1], "proba_multi"
Y = train[ycols]
is_num = lambda s: pd.api.types.is_numeric_dtype(s)
reg = mode == "direct" and all(is_num(Y[c]) and (Y[c].nunique() > 20 or not np.allclose(Y[c], np.round(Y[c]))) for c in ycols)
proba = mode == "direct" and not reg and all(is_num(sample[c]) and not np.allclose(sample[c], np.round(sample[c])) for c in targets)
positive = reg and bool((Y.to_numpy(dtype=float) > 0).all())
feats = [c for c in test.columns if c != idc and c in train.columns]

def add_dates(df):
    df = df.copy()
    for c in [c for c in feats if not is_num(train[c])]:
        head = train[c].dropna().astype(str).head(20)
        if CH["parse_dates"] and len(head) and head.str.match(r"^\d{4}-\d{2}-\d{2}").all():
            d = pd.to_datetime(df[c], errors="coerce")
            df[c + "_days"] = (d - pd.Timestamp("2000-01-01")).dt.days
            df[c + "_weekday"], df[c + "_month"] = d.dt.weekday, d.dt.month
            df = df.drop(columns=[c])
    return df

Xtr_all, Xte_all = add_dates(train[feats]), add_dates(test[feats])
cols = list(Xtr_all.columns)
text_cols = [c for c in cols if not is_num(Xtr_all[c]) and Xtr_all[c].astype(str).str.len().mean() > 30]

def media(folder, ids):
    if not os.path.isdir(folder):
        return None
    by_stem = {os.path.splitext(f)[0]: os.path.join(folder, f) for f in os.listdir(folder)}
    rows = []
    for i in ids:
        path = by_stem[str(i)]
        if path.endswith(".wav"):
            from scipy.io import wavfile
            w = wavfile.read(path)[1].astype(float) / 32768
            spec = np.abs(np.fft.rfft(w))
            rows.append(np.log1p([b.mean() for b in np.array_split(spec, 24)]))
        else:
            from PIL import Image
            g = CH["image_grid"]
            img = np.asarray(Image.open(path).convert("RGB").resize((g, g)), dtype=float) / 255
            rows.append(np.concatenate([img.ravel(), img.mean(axis=(0, 1)), img.std(axis=(0, 1))]))
    return np.array(rows)

M_train, M_test = media("train", train[idc]), media("test", test[idc])

def preprocessor():
    if text_cols:
        vocab = 300 if CH["model"] == "gbt" else 2000  # boosting densifies the matrix: keep it small
        parts = [("txt", TfidfVectorizer(max_features=vocab, ngram_range=(1, CH["text_ngrams"])), text_cols[0])]
        rest = [c for c in cols if c not in text_cols]
        if CH["text_with_columns"] and rest:
            parts.append(("num", make_pipeline(SimpleImputer(), StandardScaler()), [c for c in rest if is_num(Xtr_all[c])]))
        return ColumnTransformer(parts)
    cats = [c for c in cols if not is_num(Xtr_all[c])]
    nums = [c for c in cols if c not in cats]
    parts = [("num", make_pipeline(SimpleImputer(), StandardScaler()), nums)] if nums else []
    if cats:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="ignore")), cats))
    return ColumnTransformer(parts) if parts else None

def features(rows_fit, rows_apply):
    """Fit the preprocessing on rows_fit; matrices for rows_fit and rows_apply (None: the test set)."""
    fit, apply = [], []
    prep = preprocessor()
    if prep is not None:
        fit.append(sparse.csr_matrix(prep.fit_transform(Xtr_all.iloc[rows_fit])))
        apply.append(sparse.csr_matrix(prep.transform(Xte_all if rows_apply is None else Xtr_all.iloc[rows_apply])))
    if M_train is not None:
        mu, sd = M_train[rows_fit].mean(0), M_train[rows_fit].std(0) + 1e-9
        fit.append(sparse.csr_matrix((M_train[rows_fit] - mu) / sd))
        apply.append(sparse.csr_matrix(((M_test if rows_apply is None else M_train[rows_apply]) - mu) / sd))
    A, B = sparse.hstack(fit).tocsr(), sparse.hstack(apply).tocsr()
    return (A, B) if text_cols else (A.toarray(), B.toarray())

def model():
    m = CH["model"]
    if m == "constant":
        return None
    if reg:
        return {"forest": lambda: RandomForestRegressor(CH["n_estimators"], max_depth=CH["max_depth"],
                                                        min_samples_leaf=CH["min_samples_leaf"], random_state=0, n_jobs=1),
                "gbt": lambda: HistGradientBoostingRegressor(max_iter=CH["n_estimators"], learning_rate=CH["learning_rate"],
                                                             max_depth=CH["max_depth"] or 3, random_state=0),
                "linear": lambda: Ridge(alpha=1.0 / CH["C"]),
                "knn": lambda: KNeighborsRegressor(CH["k"])}[m]()
    return {"forest": lambda: RandomForestClassifier(CH["n_estimators"], max_depth=CH["max_depth"],
                                                     min_samples_leaf=CH["min_samples_leaf"], random_state=0, n_jobs=1),
            "gbt": lambda: HistGradientBoostingClassifier(max_iter=CH["n_estimators"], learning_rate=CH["learning_rate"],
                                                          max_depth=CH["max_depth"] or 3, random_state=0),
            "linear": lambda: LogisticRegression(C=CH["C"], max_iter=500),
            "knn": lambda: KNeighborsClassifier(CH["k"])}[m]()

def fit_predict(A, y, B):
    """One output: values (regression) or class probabilities (columns = sorted classes)."""
    m = model()
    classes = None if reg else np.array(sorted(pd.unique(y), key=str), dtype=object)
    if m is None or (classes is not None and len(classes) < 2):
        if reg:
            return np.full(B.shape[0], float(np.mean(y))), None
        return np.tile([np.mean(y == c) for c in classes], (B.shape[0], 1)), classes
    if sparse.issparse(A) and CH["model"] == "gbt":  # histogram boosting needs dense input
        A, B = A.toarray(), B.toarray()
    m.fit(A, y)
    if reg:
        return m.predict(B), None
    P = np.zeros((B.shape[0], len(classes)))
    for j, c in enumerate(m.classes_):
        P[:, list(classes).index(c)] = m.predict_proba(B)[:, j]
    return P, classes

def run(rows_fit, rows_apply):
    """Predictions for every submission column (rows_apply=None: the test set)."""
    A, B = features(rows_fit, rows_apply)
    out = {}
    for c in ycols:
        y = Y[c].to_numpy()[rows_fit]
        pred, classes = fit_predict(A, y, B)
        if reg:
            out[c] = np.maximum(pred, 0) if positive else pred
        elif mode == "proba_multi":
            for t in targets:
                hit = [j for j, k in enumerate(classes) if str(k) == str(t)]
                out[t] = pred[:, hit[0]] if hit else np.zeros(len(pred))
        elif proba:
            hit = [j for j, k in enumerate(classes) if str(k) in ("1", "1.0", "True")]
            out[c] = pred[:, hit[0]] if hit else np.zeros(len(pred))
        else:
            out[c] = classes[pred.argmax(1)]
    if mode == "proba_multi":
        P = np.clip(np.column_stack([out[t] for t in targets]), 1e-4, 1)
        P = P / P.sum(axis=1, keepdims=True)
        out = {t: P[:, j] for j, t in enumerate(targets)}
    return out

idx = np.arange(len(train))
strat = None if reg or mode == "direct" and len(ycols) > 1 else Y[ycols[0]].astype(str)
if strat is not None and strat.value_counts().min() < 2:
    strat = None
fit_rows, val_rows = train_test_split(idx, test_size=0.25, random_state=0, stratify=strat)
pv = run(fit_rows, val_rows)
truth = Y.iloc[val_rows]
if reg:
    name, lower = "rmse", True
    val = np.mean([np.sqrt(mean_squared_error(truth[c].astype(float), pv[c])) for c in ycols])
elif mode == "proba_multi":
    name, lower = "log_loss", True
    lab = truth[ycols[0]].astype(str).to_numpy()
    P = np.column_stack([pv[t] for t in targets])
    hit = np.array([[str(t) == v for t in targets] for v in lab], dtype=float)
    val = -np.mean(np.log(np.clip((P * hit).sum(1), 1e-6, 1)))
elif proba:
    name, lower = "roc_auc", False
    val = np.mean([roc_auc_score(truth[c].astype(int), pv[c]) if truth[c].nunique() > 1 else 0.5 for c in ycols])
else:
    name, lower = "accuracy", False
    val = np.mean([accuracy_score(truth[c].astype(str), pv[c].astype(str)) for c in ycols])
print(f"VALIDATION_METRIC {name} {float(val):.6f} {lower}")

pt = run(idx, None)
out = pd.DataFrame({idc: test[idc]})
for c in targets:
    out[c] = pt[c]
out.to_csv("submission.csv", index=False)
print(f"wrote submission.csv: {out.shape[0]} rows, columns {list(out.columns)}")
'''


def solve_program(choices: Choices | str = "forest") -> str:
    """The AutoML program for ``choices`` (or a bare model family name with default settings)."""
    if isinstance(choices, str):
        if choices not in FAMILIES:
            raise ValueError(f"unknown baseline model family {choices!r}; known: {FAMILIES}")
        choices = Choices(model=choices)
    return _SOLVE.replace("__CHOICES__", f"json.loads({json.dumps(asdict(choices))!r})")


# ---------------------------------------------------------------------- the short style
#: (classifier, regressor) of each family in the short programs, as ``sklearn`` import paths.
SHORT_MODELS: dict[str, tuple[str, str, str]] = {
    # family: (module, classifier, regressor); the constructor's first argument is its main setting
    "forest": ("ensemble", "RandomForestClassifier", "RandomForestRegressor"),
    "gbt": ("ensemble", "HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    "linear": ("linear_model", "LogisticRegression", "Ridge"),
    "knn": ("neighbors", "KNeighborsClassifier", "KNeighborsRegressor"),
}

_SHORT = '''import pandas as pd
from sklearn.__MODULE__ import __CLS__ as C, __REG__ as R
tr,te,s=map(pd.read_csv,["train.csv","test.csv","sample_submission.csv"])
X=pd.get_dummies(tr[te.columns]).fillna(0)
T=pd.get_dummies(te).reindex(columns=X.columns,fill_value=0).fillna(0)
L=[c for c in tr if c not in te]
c=s.columns[1:]
for y in c:
    p=y not in tr;t=(tr[L[0]].astype(str)==str(y))*1 if p else tr[y]
    m=(R if p or t.nunique()>20 else C)().fit(X,t);s[y]=m.predict(T)
if p:s[c]=s[c].clip(.001).div(s[c].clip(.001).sum(axis=1),axis=0)
s.to_csv("submission.csv",index=False)
print("VALIDATION_METRIC train_score",m.score(X,t),False)
'''


def short_program(model: str = "forest") -> str:
    """A compact program (~285 SmolLM2 tokens) that writes a valid submission for every task
    format the generator makes: one-hot features of the test columns, a classifier or regressor of
    ``model``'s family per submission column (a regressor above 20 distinct values), and for a
    class-named column absent from ``train.csv`` (per-class probabilities) a regressor of the
    indicator of that class of the label column test.csv lacks, rows renormalised to sum to 1;
    rows in the sample submission's order. It prints
    the last model's score on its own training rows as ``VALIDATION_METRIC train_score`` (AIDE
    keeps only nodes with a metric); no hold-out split, no feature engineering: what a small model
    can learn to write within a reply budget (:class:`~sandmle.scaffolds.baseline.BaselineConfig`
    ``style: short``)."""
    if model == "constant":
        model = "linear"
    if model not in SHORT_MODELS:
        raise ValueError(f"unknown baseline model family {model!r}; known: {tuple(SHORT_MODELS)}")
    module, cls, reg = SHORT_MODELS[model]
    return _SHORT.replace("__MODULE__", module).replace("__CLS__", cls).replace("__REG__", reg)
