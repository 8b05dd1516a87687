# `make demo` and `make test` work on a fresh clone: each sets up .venv first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup data demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian's Fashion-MNIST, where apt is there and we may use it; otherwise pixelwise downloads it.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; fi

setup: $(STAMP) data

demo: setup
	$(VENV)/bin/pixelwise demo

test: setup
	$(PY) -m pytest -q --timeout=600

bench: setup
	$(PY) benchmarks/fashion_mnist.py

clean:
	rm -rf $(VENV) runs results/*.tmp
