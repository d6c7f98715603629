"""What ``sandmle generate`` and ``sandmle tasks show`` print about tasks: files, target format,
difficulty (oracle, best reference, thresholds, metric noise)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

import yaml
from rich.table import Table

from .seeds import families

_FORMAT = {"proba_binary": "P(1) column", "proba_multi": "per-class probabilities", "label": "class labels",
           "value": "numeric value", "multilabel": "one probability per label", "multi_value": "one value per target"}


def task_row(meta: dict[str, Any], root: Path) -> dict[str, Any]:
    """One task's summary, read from its ``task.yaml`` (older tasks lack layout/difficulty)."""
    prov = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
    layout = meta.get("layout") if isinstance(meta.get("layout"), dict) else {}
    public = root / "prepared" / "public"
    folders = layout.get("folders") or {p.name + "/": sum(1 for _ in p.iterdir()) for p in public.iterdir()
                                        if p.is_dir()} if public.is_dir() else {}
    return {"id": meta["id"], "path": str(root), "family": layout.get("family") or prov.get("family"),
            "seed": prov.get("seed_task"), "modality": meta.get("modality"), "metric": meta.get("metric"),
            "task_type": meta.get("task_type"), "lower_is_better": meta.get("lower_is_better"),
            "n_train": prov.get("n_train"), "n_test": prov.get("n_test"),
            "files": ["train.csv", "test.csv", "sample_submission.csv", *(f"{k} ({v} files)" for k, v in folders.items())],
            "media": layout.get("media"), "submission": layout.get("submission"),
            "target_columns": meta.get("target_columns"), "pitfalls": layout.get("pitfalls") or [],
            "thresholds": meta.get("thresholds"), "difficulty": meta.get("difficulty") or {}}


def task_set_rows(root: Path) -> list[dict[str, Any]]:
    """One row per task folder under ``root`` (or the one task ``root`` is)."""
    paths = [root / "task.yaml"] if (root / "task.yaml").is_file() else sorted(root.glob("*/task.yaml"))
    rows = []
    for path in paths:
        try:
            meta = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            meta = None
        if not isinstance(meta, dict) or not {"id", "modality", "metric"} <= set(meta):
            continue  # not a readable task (generate moves such folders aside)
        rows.append(task_row(meta, path.parent))
    return rows


def _num(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def target_format(row: dict[str, Any]) -> str:
    """'3 x one probability per label (mean_column_auc)' and the like."""
    cols = row.get("target_columns") or []
    fmt = _FORMAT.get(row.get("submission") or "", row.get("task_type") or "?")
    return f"{len(cols)} col: {fmt} ({row.get('metric')})" if len(cols) > 1 else f"{fmt} ({row.get('metric')})"


def ladder_text(d: dict[str, Any], th: dict[str, Any]) -> str | None:
    """The reference rungs and the thresholds in one line, worst first
    ('default 0.81 < median 0.81 < bronze 0.84 < tuned 0.85 < silver 0.87 < ... < oracle 0.92')."""
    ladder = d.get("ladder")
    if not isinstance(ladder, dict):
        return None
    points = [(k, v) for k, v in ladder.items() if isinstance(v, (int, float))]
    points += [(k, th[k]) for k in ("median", "bronze", "silver", "gold") if isinstance(th.get(k), (int, float))]
    lower = d.get("lower_is_better")
    if lower is None:
        lower = ladder.get("oracle", 0) < ladder.get("default", 0)
    points.sort(key=lambda kv: -kv[1] if lower else kv[1])
    return " < ".join(f"{k} {_num(v)}" for k, v in points)


def per_task_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Files, target format and difficulty figures of every task."""
    table = Table(title=title)
    for col in ("task", "family", "files", "target", "train/test", "oracle", "informed", "best ref",
                "bronze/silver/gold", "SE", "gap/SE"):
        table.add_column(col, overflow="fold")
    for r in rows:
        d, th = r["difficulty"], r.get("thresholds") or {}
        folders = ", ".join(f for f in r["files"][3:]) or "csv only"
        table.add_row(r["id"], r["family"] or "-", folders, target_format(r), f"{r['n_train']}/{r['n_test']}",
                      _num(d.get("oracle_score")), _num((d.get("ladder") or {}).get("informed")),
                      f"{_num(d.get('best_reference'))} {d.get('best_reference_model') or ''}",
                      "/".join(_num(th.get(k)) for k in ("bronze", "silver", "gold")) if th else "-",
                      _num(d.get("metric_se"), 2), _num(d.get("gap_se"), 2))
    return table


def task_detail(row: dict[str, Any]) -> Table:
    """Everything ``tasks show`` knows about one task, family notes included."""
    table = Table(title=f"task {row['id']}", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    fam = families().get(row["family"] or "")
    d, th = row["difficulty"], row.get("thresholds") or {}
    items = [("family", row["family"]), ("seed", row["seed"]), ("files", ", ".join(row["files"])),
             ("media", row.get("media")), ("target format", target_format(row)),
             ("target columns", ", ".join(row.get("target_columns") or [])),
             ("pitfalls", ", ".join(row["pitfalls"]) or None), ("train / test rows", f"{row['n_train']} / {row['n_test']}"),
             ("thresholds", ", ".join(f"{k} {_num(th.get(k), 6)}" for k in ("gold", "silver", "bronze", "median")) if th else None),
             ("ladder (worst to best)", ladder_text({**d, "lower_is_better": row.get("lower_is_better")}, th)),
             ("informed gain over tuned", f"{_num(d.get('informed_gain_se'), 3)} SE" if d.get("informed_gain_se") is not None else None),
             ("oracle score", _num(d.get("oracle_score"), 6)),
             ("best reference", f"{_num(d.get('best_reference'), 6)} ({d.get('best_reference_model')})"),
             ("median reference", _num(d.get("median_reference"), 6)), ("sample submission", _num(d.get("sample_score"), 6)),
             ("headroom (oracle - best)", f"{_num(d.get('headroom'))} = {_num(d.get('headroom_se'), 3)} SE"),
             ("metric bootstrap SE", _num(d.get("metric_se"), 3)),
             ("smallest threshold gap", f"{_num(d.get('min_threshold_gap'))} (SE/gap {_num(d.get('se_per_gap'), 2)}"
                                        f"{', widened' if d.get('widened') else ''})")]
    if fam is not None:
        items += [("keeps", fam.keeps), ("simplifies", fam.simplifies), ("oracle", fam.oracle)]
    for k, v in items:
        table.add_row(k, "-" if v in (None, "") else str(v))
    return table


def difficulty_summary(difficulties: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Rows for the generation summary: headroom and metric-noise figures over accepted tasks."""
    d = [x for x in difficulties if x]
    if not d:
        return []
    vals = lambda k: [x[k] for x in d if isinstance(x.get(k), (int, float))]  # noqa: E731
    out = []
    if vals("headroom_se"):
        out.append(("oracle headroom over best reference (median, SEs)", f"{median(vals('headroom_se')):.1f}"))
    if vals("informed_gain_se"):
        out.append(("informed rung over tuned (median, SEs)", f"{median(vals('informed_gain_se')):.1f}"))
    if vals("gap_se"):
        g = vals("gap_se")
        out.append(("smallest threshold gap in SEs (median, min)", f"{median(g):.2f}, {min(g):.2f}"))
        out.append(("tasks with every gap >= 2.5 SE", f"{sum(v >= 2.5 - 1e-6 for v in g)}/{len(g)}"))
    elif vals("se_per_gap"):
        g = vals("se_per_gap")
        out.append(("metric SE / smallest threshold gap (median, max)", f"{median(g):.2f}, {max(g):.2f}"))
        out.append(("tasks with SE below half the smallest gap", f"{sum(v <= 0.5 + 1e-6 for v in g)}/{len(g)}"))
    out.append(("thresholds widened to clear the noise", f"{sum(bool(x.get('widened')) for x in d)}/{len(d)}"))
    if vals("n_test"):
        out.append(("test rows (median)", f"{median(vals('n_test')):.0f}"))
    return out


def family_mix(rows: list[dict[str, Any]]) -> str:
    """'image-classification 5, text 3, ...'"""
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.get("family") or "-" for r in rows).items()))
