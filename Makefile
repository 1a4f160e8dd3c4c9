# The commands a newcomer needs: `make run` starts everything, `make test` checks it.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: install run test lint format bench clean

install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| { echo "Installing uv with pip"; python3 -m pip install --quiet uv; }
	$(UV) sync --locked
	@touch $@

run: install
	$(UV) run sidtokens run

test: install
	$(UV) run pytest

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

format: install
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: install
	$(UV) run python bench/simulator_throughput.py
	$(UV) run python bench/scan_cost.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
