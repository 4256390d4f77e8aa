# huscf-mpi: the two set-up commands are `make demo` and `make test` (see README).
# Both create the virtual environment when missing: CPU torch first (a bare `torch`
# requirement could pull a multi-GB CUDA build), then the package with MPI from the
# mpi4py + mpich wheels, then link the data root.

VENV        ?= .venv
PYTHON      ?= python3
TORCH_SPEC  ?= torch==2.13.0
NP          ?= 5
ARGS        ?=
BIN         := $(VENV)/bin
SHARED_DATA ?= ../shared/data

export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1

.PHONY: venv data demo test clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[mpich,test]"
	touch $@

# ./data -> ../shared/data when that exists and ./data does not (never copied into the repo).
data:
	@if [ ! -e data ] && [ -d "$(SHARED_DATA)" ]; then ln -s "$(SHARED_DATA)" data && echo "linked ./data -> $(SHARED_DATA)"; fi
	@[ -e data ] || [ -n "$$HUSCF_DATA_ROOT" ] || echo "note: no ./data and no HUSCF_DATA_ROOT; pass --data-root to huscf-mpi train"

# The main job on its default: the quickstart config, 1 server + 4 clients.
demo: venv data
	$(BIN)/mpiexec -n $(NP) $(BIN)/huscf-mpi train --overwrite $(ARGS)
	$(BIN)/huscf-mpi show results/quickstart-s0.h5

test: venv data
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
