"""The Python programs the scripted ``baseline`` policy writes (they run inside the sandbox).

They read only what any agent sees in its working directory (``train.csv``, ``test.csv``,
``sample_submission.csv``) and infer the submission format from the sample: the id is its first
column; targets found in ``train.csv`` are predicted directly (regression for many-valued numeric
targets, labels or the probability of class 1 otherwise); class-named columns absent from
``train.csv`` are per-class probabilities of the one train column missing from ``test.csv``.
Each program prints ``VALIDATION_METRIC <name> <value> <lower_is_better>`` on a hold-out split.
"""

from __future__ import annotations

EXPLORE = r'''
import os, pandas as pd
for f in sorted(os.listdir(".")):
    if f.endswith(".csv"):
        df = pd.read_csv(f)
        print(f"{f}: {df.shape[0]} rows x {df.shape[1]} cols; columns: {list(df.columns)[:20]}")
sample = pd.read_csv("sample_submission.csv")
print("sample submission head:"); print(sample.head(3).to_string())
'''

_SOLVE = r'''
import warnings, numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

VARIANT = "__VARIANT__"
train, test = pd.read_csv("train.csv"), pd.read_csv("test.csv")
sample = pd.read_csv("sample_submission.csv")
idc, targets = sample.columns[0], list(sample.columns[1:])
if all(t in train.columns for t in targets):
    ycol = targets[0]
    mode = "direct"
else:  # per-class probability columns of the one label column test.csv lacks
    ycol = [c for c in train.columns if c not in test.columns and c != idc][0]
    mode = "proba_multi"
y = train[ycol]
numeric_y = pd.api.types.is_numeric_dtype(y)
reg = mode == "direct" and numeric_y and (y.nunique() > 20 or not np.allclose(y, np.round(y)))
proba_binary = (mode == "direct" and not reg and pd.api.types.is_float_dtype(sample[ycol])
                and not np.allclose(sample[ycol], np.round(sample[ycol])))
feats = [c for c in test.columns if c != idc and c in train.columns and c not in targets]
text_cols = [c for c in feats if not pd.api.types.is_numeric_dtype(train[c])
             and train[c].astype(str).str.len().mean() > 30]

def preprocessor():
    if text_cols:
        return ColumnTransformer([("txt", TfidfVectorizer(max_features=2000, ngram_range=(1, 2)), text_cols[0])])
    cats = [c for c in feats if not pd.api.types.is_numeric_dtype(train[c])]
    nums = [c for c in feats if c not in cats]
    parts = [("num", make_pipeline(SimpleImputer(), StandardScaler()), nums)]
    if cats:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="ignore")), cats))
    return ColumnTransformer(parts)

def model():
    if VARIANT == "constant":
        return None
    if reg:
        est = Ridge(alpha=1.0) if VARIANT == "linear" else RandomForestRegressor(100, random_state=0, n_jobs=1)
    else:
        est = (LogisticRegression(C=1.0, max_iter=2000) if VARIANT == "linear" or text_cols
               else RandomForestClassifier(200, random_state=0, n_jobs=1))
    return make_pipeline(preprocessor(), est)

def predict(m, X, classes):
    if m is None:  # the training prior / mean
        if reg:
            return np.full(len(X), float(y_fit.mean()))
        prior = np.array([np.mean(y_fit == c) for c in classes])
        P = np.tile(prior, (len(X), 1))
    elif reg:
        return m.predict(X)
    else:
        P = np.zeros((len(X), len(classes)))
        for j, c in enumerate(m.classes_):
            P[:, list(classes).index(c)] = m.predict_proba(X)[:, j]
    return P

classes = None if reg else (targets if mode == "proba_multi" else sorted(y.unique(), key=str))
if mode == "proba_multi":
    classes = [type(y.iloc[0])(c) if numeric_y else c for c in targets]
Xtr, Xva, ytr, yva = train_test_split(train[feats], y, test_size=0.25, random_state=0,
                                      stratify=None if reg or y.value_counts().min() < 2 else y)
y_fit = ytr
m = model()
if m is not None:
    m.fit(Xtr, ytr)
pv = predict(m, Xva, classes)
if reg:
    name, val, lower = "rmse", float(np.sqrt(mean_squared_error(yva, pv))), True
elif proba_binary:
    pos = list(classes).index(1) if 1 in list(classes) else len(classes) - 1
    name, val, lower = "roc_auc", float(roc_auc_score(yva == classes[pos], pv[:, pos])), False
elif mode == "proba_multi":
    idx = [list(classes).index(v) for v in yva]  # columns follow the sample, not sorted labels
    name, val, lower = "log_loss", float(-np.mean(np.log(np.clip(pv[np.arange(len(idx)), idx], 1e-6, 1)))), True
else:
    name, val, lower = "accuracy", float(accuracy_score(yva.astype(str), np.array(classes, dtype=object)[pv.argmax(1)].astype(str))), False
print(f"VALIDATION_METRIC {name} {val:.6f} {lower}")

y_fit = y  # refit on all rows for the submission
m = model()
if m is not None:
    m.fit(train[feats], y)
pt = predict(m, test[feats], classes)
out = pd.DataFrame({idc: test[idc]})
if reg:
    out[ycol] = pt
elif mode == "proba_multi":
    pt = np.clip(pt, 1e-4, 1)
    pt = pt / pt.sum(axis=1, keepdims=True)  # graders reject rows that do not sum to 1 (as MLE-bench)
    for j, c in enumerate(targets):
        out[c] = pt[:, j]
elif proba_binary:
    out[ycol] = pt[:, pos]
else:
    out[ycol] = np.array(classes, dtype=object)[pt.argmax(1)]
out.to_csv("submission.csv", index=False)
print(f"wrote submission.csv: {out.shape[0]} rows, columns {list(out.columns)}")
'''

VARIANTS = ("forest", "linear", "constant")


def solve_program(variant: str = "forest") -> str:
    """The AutoML program for one model family: ``forest``, ``linear`` or ``constant`` (prior)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown baseline variant {variant!r}; known: {VARIANTS}")
    return _SOLVE.replace("__VARIANT__", variant)
