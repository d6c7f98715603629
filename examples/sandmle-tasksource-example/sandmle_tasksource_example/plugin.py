"""Task source ``sklearn-datasets``: scikit-learn's bundled datasets (iris, wine, breast cancer,
digits) as classification tasks, written once into a cache folder in sandmle's task format."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sandmle.core import ComponentConfig, Task, TaskSource, hookimpl

DATASETS = ("iris", "wine", "breast_cancer", "digits")


class SklearnDatasetsConfig(ComponentConfig):
    """Which datasets, where the tasks are written, how the rows are split."""

    datasets: list[str] = Field(default_factory=lambda: ["iris", "wine"], description=f"any of {DATASETS}")
    cache_dir: Path = Field(Path("runs/sklearn-tasks"), description="tasks are written here once")
    test_fraction: float = Field(0.3, gt=0, lt=1)
    seed: int = 0


class SklearnDatasets(TaskSource):
    def __init__(self, config: SklearnDatasetsConfig):
        unknown = sorted(set(config.datasets) - set(DATASETS))
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; choose from {DATASETS}")
        self.config = config

    def tasks(self) -> list[Task]:
        from sandmle.core.task import load_task

        tasks = []
        for name in self.config.datasets:
            root = self.config.cache_dir / f"sklearn-{name}"
            tasks.append(load_task(root) if (root / "task.yaml").is_file() else self._write(name, root))
        return tasks

    def _write(self, name: str, root: Path) -> Task:
        import sklearn.datasets
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from sandmle.core import MedalThresholds
        from sandmle.graders.task_writer import write_task

        frame = getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame
        frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
        frame.insert(0, "id", range(len(frame)))
        train, test = train_test_split(frame, test_size=self.config.test_fraction,
                                       random_state=self.config.seed, stratify=frame["target"])
        features = [c for c in frame.columns if c not in ("id", "target")]
        # Medal thresholds from two reference solutions: the majority class sets the median, a
        # logistic regression sets bronze; silver and gold ask for a little more than it reaches.
        median = DummyClassifier().fit(train[features], train["target"]).score(test[features], test["target"])
        reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
            train[features], train["target"]).score(test[features], test["target"])
        bronze = max(reference - 0.02, median + 0.01)
        thresholds = MedalThresholds(gold=min(1.0, bronze + 0.04), silver=min(0.999, bronze + 0.02),
                                     bronze=bronze, median=median)
        if not thresholds.gold > thresholds.silver > thresholds.bronze:  # a ceiling at 1.0
            thresholds = MedalThresholds(gold=1.0, silver=0.995, bronze=min(bronze, 0.99), median=median)
        sample = test[["id"]].assign(target=train["target"].mode()[0])
        description = (f"# {name.replace('_', ' ')}\n\nPredict `target` for every row of test.csv from the "
                       f"columns {', '.join(features[:6])}{', ...' if len(features) > 6 else ''}. "
                       "Metric: accuracy. Submit submission.csv with columns id,target.\n")
        return write_task(root, task_id=f"sklearn-{name}", train=train, test=test.drop(columns="target"),
                          answers=test[["id", "target"]], sample_submission=sample, description=description,
                          metric="accuracy", lower_is_better=False, id_column="id", target_columns=["target"],
                          thresholds=thresholds, provenance={"source": "sklearn.datasets", "dataset": name})


@hookimpl
def register_task_sources(register):
    register("sklearn-datasets", SklearnDatasets, config=SklearnDatasetsConfig,
             description="scikit-learn's bundled datasets as classification tasks")
