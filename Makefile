# `make serve` and `make test` are all a newcomer needs; see README.md.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 3000
PROFILE ?= quick
WORKERS ?= 2

export BENTOML_DO_NOT_TRACK := True
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install models serve test clean-models

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[serve,train,dev]"
	touch $@

install: $(VENV)/.installed

# Simulate jets, train and export the four models of the $(PROFILE) profile; keeps models/ that exist.
models: install
	$(PY) -m training build --profile $(PROFILE) --workers $(WORKERS)

serve: models
	$(PY) -m serving.store register models
	$(VENV)/bin/bentoml serve --port $(PORT)

test: install
	$(PY) -m pytest

clean-models:
	rm -rf models/fcnn_tensor models/fcnn_image models/cnn models/densenet
