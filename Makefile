# `make serve` and `make test` are all a newcomer needs; see README.md.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 3000
PROFILE ?= quick
# processes simulating jets (serving's worker count is the JET_TAGGER_WORKERS environment variable)
SIM_WORKERS ?= 2

export BENTOML_DO_NOT_TRACK := True
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install models serve bento test report clean-models

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[serve,train,dev]"
	touch $@

install: $(VENV)/.installed

# Simulate jets, train and export the four models of the $(PROFILE) profile; keeps models/ that exist.
models: install
	$(PY) -m training build --profile $(PROFILE) --workers $(SIM_WORKERS)

serve: models
	$(PY) -m serving.store register models
	$(VENV)/bin/bentoml serve --port $(PORT)

# A Bento (bentoml build): serving/ + the four models from the store + light dependencies only.
bento: models
	$(PY) -m serving.store register models
	$(VENV)/bin/bentoml build

test: install
	$(PY) -m pytest

# Metrics, figures and reports/<profile>/report.md for the models in models/ (paper's Table 4).
report: models
	$(PY) -m training evaluate

clean-models:
	rm -rf models/fcnn_tensor models/fcnn_image models/cnn models/densenet
