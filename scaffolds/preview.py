"""AIDE's data overview: a file tree and per-CSV column summaries, shortened when too long."""

from __future__ import annotations

from pathlib import Path

MAX_CHARS = 6000


def _csv_summary(path: Path, simple: bool) -> str:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is described, not raised
        return f"-> {path.name}: unreadable as CSV ({type(exc).__name__})"
    lines = [f"-> {path.name} has {df.shape[0]} rows and {df.shape[1]} columns."]
    if simple:
        cols = list(df.columns[:15])
        return "\n".join(lines + [f"The first columns are: {', '.join(map(str, cols))}"])
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            lines.append(f"{col} is boolean, {s.mean() * 100:.1f}% True")
        elif s.nunique() < 10:
            lines.append(f"{col} has {s.nunique()} unique values: {sorted(map(str, s.dropna().unique()))}")
        elif pd.api.types.is_numeric_dtype(s):
            lines.append(f"{col} has range {s.min():.2f} - {s.max():.2f}, {s.isna().sum()} NaN values")
        else:
            top = list(map(str, s.value_counts().index[:4]))
            lines.append(f"{col} has {s.nunique()} unique values; most common: {top}")
    return "\n".join(lines)


def data_preview(root: Path, files: list[Path]) -> str:
    """Summaries of the public files under ``root`` (simple mode past 6000 characters)."""
    tree = "\n".join(f"{p.relative_to(root)} ({p.stat().st_size} bytes)" for p in files[:30])
    if len(files) > 30:
        tree += f"\n... and {len(files) - 30} other files"
    for simple in (False, True):
        parts = [tree] + [_csv_summary(p, simple) for p in files if p.suffix == ".csv"]
        text = "\n\n".join(parts)
        if len(text) <= MAX_CHARS:
            return text
    return text[:MAX_CHARS]
