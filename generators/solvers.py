"""Reference solvers, run inside the sandbox on a candidate's public files.

One Python program (``solver_program``) trains every reference variant in a single sandbox
execution (a warm worker pays the imports once) and writes ``refsubs/<variant>.csv``. The
variants span the quality range a leaderboard needs: the sample submission, a constant /
majority baseline, linear models, k-NN, forests, gradient-boosted trees and a tuned model (a cross-validated regularisation grid: cheap enough to keep
verification near one second of CPU per task).
The program only sees public files and the public task structure passed in its header.
"""

from __future__ import annotations

import json

VARIANTS = ["sample", "constant", "linear_weak", "linear", "knn_15", "knn_5", "tree_depth3",
            "forest_small", "forest", "gbt_shallow", "gbt", "gbt_deep", "tuned"]

_PROGRAM = r'''
import json, os, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

INFO = json.loads(__INFO__)
train, test = pd.read_csv("train.csv"), pd.read_csv("test.csv")
sample = pd.read_csv("sample_submission.csv")
idc, fmt, ycol = INFO["id_column"], INFO["submission"], INFO["label_column"]
reg = INFO["task_type"] in ("regression", "forecasting")
X, Xt = train.drop(columns=[idc, ycol]), test.drop(columns=[idc])
y = train[ycol].to_numpy()
if INFO["modality"] == "text":
    prep = TfidfVectorizer(ngram_range=(1, 1), min_df=2, max_features=300)
    col = X.columns[0]
    A, At = prep.fit_transform(X[col].fillna("")), prep.transform(Xt[col].fillna(""))
else:
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    parts = [("num", make_pipeline(SimpleImputer(), StandardScaler()), nums)]
    if cats:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="ignore")), cats))
    prep = ColumnTransformer(parts)
    A, At = prep.fit_transform(X), prep.transform(Xt)
S = 0
def models():
    if reg:
        return {"linear_weak": Ridge(alpha=300.0), "linear": Ridge(alpha=1.0),
                "knn_15": KNeighborsRegressor(15), "knn_5": KNeighborsRegressor(5),
                "tree_depth3": DecisionTreeRegressor(max_depth=3, random_state=S),
                "forest_small": RandomForestRegressor(10, max_depth=4, random_state=S),
                "forest": RandomForestRegressor(40, random_state=S),
                "gbt_shallow": GradientBoostingRegressor(n_estimators=40, max_depth=1, max_features="sqrt", random_state=S),
                "gbt": GradientBoostingRegressor(n_estimators=60, max_depth=3, max_features="sqrt", random_state=S),
                "gbt_deep": GradientBoostingRegressor(n_estimators=30, max_depth=5, max_features="sqrt", random_state=S),
                "tuned": GridSearchCV(Ridge(), {"alpha": [0.1, 1.0, 10.0, 100.0]}, cv=3)}
    return {"linear_weak": LogisticRegression(C=0.01, max_iter=500),
            "linear": LogisticRegression(C=1.0, max_iter=1000),
            "knn_15": KNeighborsClassifier(15), "knn_5": KNeighborsClassifier(5),
            "tree_depth3": DecisionTreeClassifier(max_depth=3, random_state=S),
            "forest_small": RandomForestClassifier(10, max_depth=4, random_state=S),
            "forest": RandomForestClassifier(40, random_state=S),
            "gbt_shallow": GradientBoostingClassifier(n_estimators=40, max_depth=1, max_features="sqrt", random_state=S),
            "gbt": GradientBoostingClassifier(n_estimators=50, max_depth=3, max_features="sqrt", random_state=S),
            "gbt_deep": GradientBoostingClassifier(n_estimators=30, max_depth=5, max_features="sqrt", random_state=S),
            "tuned": GridSearchCV(LogisticRegression(max_iter=1000),
                                  {"C": [0.03, 0.3, 3.0, 30.0]}, cv=3)}
os.makedirs("refsubs", exist_ok=True)
def write(name, values):
    out = pd.DataFrame({idc: test[idc]})
    if fmt == "proba_multi":
        for j, c in enumerate(INFO["target_columns"]):
            out[c] = values[:, j]
    else:
        out[INFO["target_columns"][0]] = values
    out.to_csv(f"refsubs/{name}.csv", index=False)
sample.to_csv("refsubs/sample.csv", index=False)
classes = INFO["classes"]
if reg:
    write("constant", np.full(len(test), float(np.mean(y))))
elif fmt == "proba_binary":
    write("constant", np.full(len(test), float(np.mean(y))))
elif fmt == "proba_multi":
    prior = np.array([np.mean(y == c) for c in classes])
    prior = np.clip(prior, 0.01, 1)
    write("constant", np.tile(prior / prior.sum(), (len(test), 1)))
else:
    vals, counts = np.unique(y, return_counts=True)
    write("constant", np.array([vals[np.argmax(counts)]] * len(test), dtype=object))
failed = {}
for name, model in models().items():
    try:
        model.fit(A, y)
        if reg or fmt == "label":
            write(name, model.predict(At))
        elif fmt == "proba_binary":
            write(name, model.predict_proba(At)[:, list(model.classes_).index(1)])
        else:
            P = np.zeros((len(test), len(classes)))
            for j, c in enumerate(model.classes_):
                P[:, classes.index(c)] = model.predict_proba(At)[:, j]
            P = np.clip(P, 1e-4, 1)
            write(name, P / P.sum(axis=1, keepdims=True))  # rows must sum to 1 (graders reject others)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps({"failed": failed}))
'''


def solver_program(info: dict) -> str:
    """The reference-solver program for a task whose *public* structure is ``info``.

    ``info`` keys: id_column, label_column (in train.csv), target_columns (of the submission),
    submission, task_type, modality, classes. Nothing hidden may go in here.
    """
    return _PROGRAM.replace("__INFO__", repr(json.dumps(info)))
