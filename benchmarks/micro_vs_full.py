"""What a user gains per agent step: a generated micro task vs the same task at its competition's size.

For each MLE-bench-lite seed (one per real competition), one task is synthesized twice from the
same seed and RNG key (same hidden rule, columns and file layout):

- **micro**: at the size the ``procedural`` generator gives it (training rows, test rows and media
  files drawn from :class:`~sandmle.generators.configs.ProceduralConfig`'s defaults: 50-200
  training rows, 1,000-2,000 test rows, 300-500 test files), with the generator's image sizes
  and 0.5 s clips: a real generated task at its real size;
- **full**: at the seed competition's size (:data:`FULL`: training and test rows, image side in
  pixels, clip length and sample rate, from the competitions' data pages; MLE-bench re-splits
  some training sets into its own train/test, which changes the counts, not their order of
  magnitude). Rows above ``--max-rows`` (default 1,000,000: the 4M- and 55M-row tables and the
  ~10M-token text-normalization sets do not fit this machine's memory with the program below)
  are capped, and the row says so.

The same program, the scripted baseline's greedy first solution (reads every file, featurizes,
checks a 100-tree random forest on a hold-out split, refits, writes ``submission.csv``), runs:

- micro, as the agent runs it: one ``exec`` in a warm ``local`` sandbox session (median of
  ``--reps``);
- full, as an MLE-bench agent runs it: one fresh ``python solution.py`` in the task folder
  (interpreter start and imports included) -- the headline ratio ``full cold / micro warm``;
- full, warm: one ``exec`` in a warm session of a second ``local`` sandbox sized for it -- the
  ``full warm / micro warm`` column is the part of the gain that comes from scale alone, the
  rest is start-up.

``--time-cap-s`` stops a full cold step that runs longer (the jigsaw comments' forests take ~20 h
on 2 cores): its row records the cap as a lower bound (``censored``, printed ``>=``), its warm step
is not run, and a family median or the median over families that such a bound could still move
is printed as a lower bound too (a bound above the median cannot move it).

Results are appended to ``--out`` (JSON lines) one seed at a time as each finishes; a rerun with
the same ``--out``, ``--scale`` and ``--max-rows`` skips the seeds already there, so a long run
can be stopped and resumed. ``--scale`` multiplies every full row and file count (image sizes
and clip lengths stay real) for a quick trial; the full-scale run takes hours on 2 cores::

    .venv/bin/python benchmarks/micro_vs_full.py --scale 0.01 --families text,audio   # minutes
    nice -n 10 .venv/bin/python benchmarks/micro_vs_full.py --out runs/micro_vs_full.jsonl  # hours; resumable

It prints one row per seed, the median ratio per family and the median over families (SandMLE
reports 13.7x per step; the goal here is >= 50x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sandmle.core.plugins import get_registry
from sandmle.generators import media
from sandmle.generators.configs import ProceduralConfig
from sandmle.generators.seeds import all_seeds
from sandmle.generators.synth import synthesize
from sandmle.generators.writer import write_candidate
from sandmle.scaffolds.baseline_programs import Choices, solve_program

METHOD = 2  # bump when what a row means changes: rows of another method are not resumed


@dataclass(frozen=True)
class Full:
    """A competition's size: rows (files, for media tasks), image side, clip length."""

    train: int
    test: int
    source: str
    px: int | None = None  # square side with the real images' pixel count
    clip_s: float | None = None
    sample_rate: int | None = None

    def rows(self, scale: float, max_rows: int) -> tuple[int, int]:
        """Training and test rows (files) at ``scale``, each capped at ``max_rows``."""
        return (max(50, int(min(self.train, max_rows) * scale)), max(20, int(min(self.test, max_rows) * scale)))

    def pixels_bytes(self, scale: float, max_rows: int) -> int:
        """Raw pixel bytes of the images at full size (0 for other data): what the disk must hold
        at most, since PNG compresses them."""
        return sum(self.rows(scale, max_rows)) * 3 * self.px ** 2 if self.px else 0

    def cost(self, scale: float, max_rows: int) -> float:
        """A rough order of the work a seed takes (rows, times pixels or samples per row)."""
        per_row = (self.px or 1) ** 2 / 1024 + (self.clip_s or 0) * (self.sample_rate or 0) / 1000
        return sum(self.rows(scale, max_rows)) * max(per_row, 1.0)


FULL = {
    "aerial-cactus-identification": Full(17_500, 4_000, "17,500 / 4,000 images, 32x32", px=32),
    "aptos2019-blindness-detection": Full(3_662, 1_928, "3,662 / 1,928 fundus photos, ~2,400x1,700", px=2_000),
    "denoising-dirty-documents": Full(144, 72, "144 / 72 scans, 540x420", px=476),
    "dog-breed-identification": Full(10_222, 10_357, "10,222 / 10,357 photos, ~500x375", px=433),
    "dogs-vs-cats-redux-kernels-edition": Full(25_000, 12_500, "25,000 / 12,500 photos, ~500x375", px=433),
    "histopathologic-cancer-detection": Full(220_025, 57_458, "220,025 / 57,458 patches, 96x96", px=96),
    "plant-pathology-2020-fgvc7": Full(1_821, 1_821, "1,821 / 1,821 photos, 2,048x1,365", px=1_672),
    "ranzcr-clip-catheter-line-classification": Full(30_083, 3_582, "30,083 / ~3,600 x-rays, ~2,500x3,000",
                                                     px=2_700),
    "siim-isic-melanoma-classification": Full(33_126, 10_982, "33,126 / 10,982 photos, up to 6,000x4,000",
                                              px=2_000),
    "mlsp-2013-birds": Full(322, 323, "645 10-s recordings at 16 kHz, half for test", clip_s=10.0,
                            sample_rate=16_000),
    "the-icml-2013-whale-challenge-right-whale-redux": Full(30_000, 54_503, "30,000 / 54,503 2-s clips at 2 kHz",
                                                            clip_s=2.0, sample_rate=2_000),
    "detecting-insults-in-social-commentary": Full(3_947, 2_647, "3,947 / 2,647 comments"),
    "spooky-author-identification": Full(19_579, 8_392, "19,579 / 8,392 sentences"),
    "text-normalization-challenge-english-language": Full(9_918_441, 1_088_564, "9.9M / 1.1M tokens"),
    "text-normalization-challenge-russian-language": Full(10_574_516, 989_880, "10.6M / 1.0M tokens"),
    "jigsaw-toxic-comment-classification-challenge": Full(159_571, 153_164, "159,571 / 153,164 comments"),
    "random-acts-of-pizza": Full(4_040, 1_631, "4,040 / 1,631 requests"),
    "leaf-classification": Full(990, 594, "990 / 594 leaves"),
    "nomad2018-predict-transparent-conductors": Full(2_400, 600, "2,400 / 600 materials"),
    "new-york-city-taxi-fare-prediction": Full(55_423_856, 9_914, "55.4M / 9,914 rides"),
    "tabular-playground-series-dec-2021": Full(4_000_000, 1_000_000, "4M / 1M rows"),
    "tabular-playground-series-may-2022": Full(900_000, 700_000, "900,000 / 700,000 rows"),
}
SOLUTION = Choices()  # the scripted baseline's greedy first solution: a 100-tree random forest
# The full-side sandbox: room for the full task's files and the program's memory (the cold side
# has no caps); its workspace is a scanned host folder, not memory.
FULL_SANDBOX = {"pool_size": 1, "memory_mb": 12_288, "disk_limit_mb": 65_536, "max_files": 2_000_000,
                "workspace_fs": "scan", "staging_cache_mb": 0, "cpu_s": 86_400}


def micro_sizes(seed, rng: np.random.Generator) -> tuple[int, int]:
    """Training and test rows as the procedural generator draws them (its default config)."""
    cfg = ProceduralConfig()
    n_train = int(rng.integers(cfg.rows[0], cfg.rows[1] + 1))
    test_rows = cfg.media_test_rows if seed.synth in ("image", "audio") else cfg.test_rows
    return n_train, int(rng.integers(test_rows[0], test_rows[1] + 1))


RENDER_PX = 128  # the generator's textured backgrounds crop 1-3x the side from 427x640 photos


@contextlib.contextmanager
def full_media(seed, full: Full):
    """The seed at the competition's clip length and image size (up to :data:`RENDER_PX`; larger
    images are upscaled afterwards by :func:`upscale_images`). The generator's renderers read
    these module settings at call time; its noise chunk is shrunk to stay within ~256 MB."""
    saved = media.CLIP_SECONDS, media.SAMPLE_RATE, media.CHUNK
    try:
        if full.clip_s:
            media.CLIP_SECONDS, media.SAMPLE_RATE = full.clip_s, full.sample_rate or media.SAMPLE_RATE
        if full.px:
            side = min(full.px, RENDER_PX)
            media.CHUNK = max(1, min(saved[2], (256 << 20) // (side * side * 3 * 8)))
            seed = seed.model_copy(update={"image_size": (side, side)})
        yield seed
    finally:
        media.CLIP_SECONDS, media.SAMPLE_RATE, media.CHUNK = saved


def upscale_images(public: Path, px: int) -> None:
    """Every PNG under ``public`` resized to ``px`` x ``px`` in place, one at a time (a full set
    at megapixel size does not fit in memory at once): the program then decodes files of the
    real pixel count."""
    from PIL import Image

    for path in public.rglob("*.png"):
        with Image.open(path) as img:
            big = img.convert("RGB").resize((px, px), Image.BICUBIC)
        big.save(path, compress_level=1)


def cold_step(folder: Path, cap_s: float = 0.0) -> tuple[float, float, bool]:
    """Wall seconds, peak RSS (MB) and whether it was stopped at ``cap_s`` (0: no cap) of one
    fresh ``python solution.py`` in ``folder``; a stopped step reports the cap as its time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a long run's warnings cannot fill it and stall
        proc = subprocess.Popen([sys.executable, "solution.py"], cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        timer = threading.Timer(cap_s, proc.kill) if cap_s else None  # wait4 below keeps its rusage
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        proc.returncode = status  # reaped here: Popen must not wait for it again
        wall = time.perf_counter() - t0
        stopped = bool(cap_s) and status != 0 and wall >= cap_s
        if stopped:
            return cap_s, usage.ru_maxrss / 1024, True
        if status != 0:
            err.seek(0)
            raise RuntimeError(f"full-scale step failed in {folder}: {err.read().decode(errors='replace')[-800:]}")
    return wall, usage.ru_maxrss / 1024, False


async def warm_steps(sandbox, task, reps: int) -> tuple[float, float]:
    """Median wall seconds and peak MB of the solution as a step in a warm session."""
    session = await sandbox.open(task)
    runs = []
    try:
        for _ in range(reps):
            res = await session.exec(solve_program(SOLUTION), timeout=86_400)
            if not res.ok:
                raise RuntimeError(f"step failed on {task.id}: {res.killed} {res.detail} {res.stderr_tail[-800:]}")
            runs.append((res.wall_s, res.peak_mem_mb))
    finally:
        await session.close()
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def done_rows(out: Path, scale: float, max_rows: int) -> dict[str, dict]:
    rows = {}
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut off by a kill: that seed runs again
            if (row.get("method"), row.get("scale"), row.get("max_rows")) == (METHOD, scale, max_rows):
                rows[row["seed"]] = row
    return rows


def measure_seed(seed, full: Full, args, work: Path, micro_box, full_box) -> dict:
    key = [0, 1]
    rng = np.random.default_rng(key)
    n_train, n_test = micro_sizes(seed, np.random.default_rng([*key, 7]))
    micro = synthesize(seed, rng, n_train, n_test)
    micro_task = write_candidate(micro, work / "micro", f"{seed.name}-micro", {})
    capped = full.train > args.max_rows
    f_train, f_test = full.rows(args.scale, args.max_rows)
    t0 = time.perf_counter()
    with full_media(seed, full) as full_seed:
        big = synthesize(full_seed, np.random.default_rng(key), f_train, f_test)
    full_task = write_candidate(big, work / "full", f"{seed.name}-full", {})
    big.files = {}  # on disk now; a full set of media files is large
    if full.px and full.px > RENDER_PX:
        upscale_images(full_task.public_dir, full.px)
    gen_s = time.perf_counter() - t0
    micro_s, micro_mb = asyncio.run(warm_steps(micro_box, micro_task, args.reps))
    public = full_task.public_dir
    (public / "solution.py").write_text(solve_program(SOLUTION))
    cold_s, cold_mb, censored = cold_step(public, args.time_cap_s)
    (public / "solution.py").unlink()
    (public / "submission.csv").unlink(missing_ok=True)
    # A step stopped at the cap would take the cap again warm: its warm side is not measured.
    warm_s, warm_mb = (None, None) if censored else asyncio.run(warm_steps(full_box, full_task, 1))
    files = sum(1 for _ in public.rglob("*") if _.is_file())
    shutil.rmtree(work / "full", ignore_errors=True)
    shutil.rmtree(work / "micro", ignore_errors=True)
    return {"method": METHOD, "scale": args.scale, "max_rows": args.max_rows, "seed": seed.name,
            "family": seed.family, "competition": seed.mlebench_id, "full_size_source": full.source,
            "capped": capped, "micro_rows": [len(micro.train), len(micro.test)],
            "full_rows": [len(big.train), len(big.test)], "full_files": files,
            "full_px": full.px, "full_clip_s": full.clip_s, "full_generation_s": round(gen_s, 1),
            "micro_warm_s": round(micro_s, 4), "full_cold_s": round(cold_s, 3),
            "full_warm_s": None if censored else round(warm_s, 3), "censored": censored,
            "micro_peak_mb": round(micro_mb, 1), "full_cold_peak_mb": round(cold_mb, 1),
            "full_warm_peak_mb": None if censored else round(warm_mb, 1),
            "ratio_cold": round(cold_s / max(micro_s, 1e-6), 1),
            "ratio_warm": None if censored else round(warm_s / max(micro_s, 1e-6), 1),
            "load_average": round(os.getloadavg()[0], 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def censored_median(values: list[tuple[float, bool]]) -> tuple[float | None, bool]:
    """Median of (value, is_lower_bound) pairs, and whether it is itself only a lower bound: the
    bounds count at their value, which is exact unless a bound sits at or below the median (a
    larger true value could then move it)."""
    if not values:
        return None, False
    median = statistics.median(v for v, _ in values)
    return median, any(bound and v <= median for v, bound in values)


def summarize(rows: list[dict]) -> dict:
    by_family: dict[str, list[dict]] = {}
    for row in rows:
        by_family.setdefault(row["family"], []).append(row)
    families = {}
    for f, rs in sorted(by_family.items()):
        cold, cold_bound = censored_median([(r["ratio_cold"], bool(r.get("censored"))) for r in rs])
        warm = [r["ratio_warm"] for r in rs if r.get("ratio_warm") is not None]
        families[f] = {"seeds": len(rs), "median_ratio_cold": cold, "cold_lower_bound": cold_bound,
                       "median_ratio_warm": statistics.median(warm) if warm else None}
    cold, cold_bound = censored_median([(v["median_ratio_cold"], v["cold_lower_bound"]) for v in families.values()])
    warm = [v["median_ratio_warm"] for v in families.values() if v["median_ratio_warm"] is not None]
    return {"families": families, "median_over_families_cold": cold, "median_over_families_cold_lower_bound": cold_bound,
            "median_over_families_warm": statistics.median(warm) if warm else None}


def print_report(rows: list[dict], summary: dict, *, scale: float, max_rows: int) -> None:
    """The table of seeds, the family medians and the median over families (``>=``: a lower bound)."""
    print(f"{'seed':44} {'micro rows':>11} {'full rows':>15} {'micro s':>8} {'full cold s':>11} "
          f"{'full warm s':>11} {'cold/micro':>10} {'warm/micro':>10}")
    for r in rows:
        bound = ">=" if r.get("censored") else ""
        warm_s = "-" if r.get("full_warm_s") is None else f"{r['full_warm_s']:.2f}"
        warm_x = "-" if r.get("ratio_warm") is None else f"{r['ratio_warm']:.1f}x"
        print(f"{r['seed'][:44]:44} {'%d/%d' % tuple(r['micro_rows']):>11} "
              f"{'%d/%d' % tuple(r['full_rows']) + ('*' if r['capped'] else ''):>15} {r['micro_warm_s']:8.3f} "
              f"{bound + format(r['full_cold_s'], '.2f'):>11} {warm_s:>11} {bound + format(r['ratio_cold'], '.1f') + 'x':>10} "
              f"{warm_x:>10}")
    print(f"{'family':24} {'seeds':>5} {'median cold/micro':>18} {'median warm/micro':>18}")
    for fam, v in summary["families"].items():
        cold = (">=" if v["cold_lower_bound"] else "") + f"{v['median_ratio_cold']:.1f}x"
        warm = "-" if v["median_ratio_warm"] is None else f"{v['median_ratio_warm']:.1f}x"
        print(f"{fam:24} {v['seeds']:5d} {cold:>18} {warm:>18}")
    if not rows:
        print("no seed measured")
        return
    at_least = ">= " if summary["median_over_families_cold_lower_bound"] else ""
    warm = summary["median_over_families_warm"]
    warm = "no warm step run" if warm is None else f"{warm:.1f}x warm"
    print(f"median over families: {at_least}{summary['median_over_families_cold']:.1f}x cold, "
          f"{warm} (scale {scale}; * = capped at --max-rows {max_rows:,}; load average {os.getloadavg()[0]:.1f})")
    if summary.get("not_measured"):
        print(f"not measured ({len(summary['not_measured'])} seeds): {', '.join(summary['not_measured'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="", help="comma-separated families (default: all with a lite seed)")
    ap.add_argument("--seeds", default="", help="comma-separated seed names (default: every lite seed)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every full row and file count")
    ap.add_argument("--max-rows", type=int, default=1_000_000, help="cap on full training/test rows")
    ap.add_argument("--reps", type=int, default=3, help="micro steps per seed (median)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON lines, appended per seed; rerun to resume (default: a temporary file)")
    ap.add_argument("--time-cap-s", type=float, default=0.0,
                    help="stop a full cold step after this many seconds and record the cap as a lower bound (0: none)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    families = set(filter(None, args.families.split(",")))
    names = set(filter(None, args.seeds.split(",")))
    seeds = [s for s in all_seeds() if s.mlebench_id in FULL and (not families or s.family in families)
             and (not names or s.name in names)]
    if not seeds:
        raise SystemExit("no lite seed matches --families/--seeds")
    work = Path(tempfile.mkdtemp(prefix="sandmle-microfull-"))
    out = args.out or work / "results.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_rows(out, args.scale, args.max_rows)
    # Cheapest first, so a run stopped early has measured as many seeds (and families) as it could.
    todo = sorted((s for s in seeds if s.name not in done), key=lambda s: FULL[s.mlebench_id].cost(args.scale, args.max_rows))
    if len(todo) < len(seeds):
        print(f"{len(seeds) - len(todo)} seed(s) done earlier in {out}: skipped", file=sys.stderr)
    registry = get_registry()
    micro_box = registry.create("sandboxes", "local", {"pool_size": 1}) if todo else None
    full_box = registry.create("sandboxes", "local", FULL_SANDBOX) if todo else None
    try:
        for seed in todo:
            full = FULL[seed.mlebench_id]
            free = shutil.disk_usage(work).free
            if full.pixels_bytes(args.scale, args.max_rows) > free:
                print(f"{seed.name}: skipped, its images take up to {full.pixels_bytes(args.scale, args.max_rows) / 1e9:.0f} GB "
                      f"of raw pixels and {free / 1e9:.0f} GB are free in {work} (set TMPDIR elsewhere)",
                      file=sys.stderr, flush=True)
                continue
            try:
                row = measure_seed(seed, full, args, work, micro_box, full_box)
            except (OSError, RuntimeError, MemoryError) as exc:  # one seed's failure ends only that seed
                print(f"{seed.name}: failed, not recorded (a rerun tries it again): {type(exc).__name__}: "
                      f"{str(exc)[-400:]}", file=sys.stderr, flush=True)
                shutil.rmtree(work / "full", ignore_errors=True)
                shutil.rmtree(work / "micro", ignore_errors=True)
                continue
            with out.open("a") as fh:  # one line per finished seed: a killed run resumes after it
                fh.write(json.dumps(row) + "\n")
            done[seed.name] = row
            at_least = ">= " if row["censored"] else ""
            warm = "not run" if row["censored"] else f"{row['full_warm_s']:.1f} s ({row['ratio_warm']}x)"
            print(f"{seed.name}: micro {row['micro_warm_s']:.3f} s, full cold {at_least}{row['full_cold_s']:.1f} s "
                  f"({at_least}{row['ratio_cold']}x), warm {warm}", file=sys.stderr, flush=True)
    finally:
        for box in (micro_box, full_box):
            if box is not None:
                asyncio.run(box.shutdown())
    rows = [done[s.name] for s in seeds if s.name in done]
    shutil.rmtree(work, ignore_errors=True)  # the results file too, unless --out put it elsewhere
    summary = summarize(rows)
    summary["not_measured"] = [s.name for s in seeds if s.name not in done]
    if args.json:
        print(json.dumps({"rows": rows, **summary}))
        return
    print_report(rows, summary, scale=args.scale, max_rows=args.max_rows)

if __name__ == "__main__":
    main()
