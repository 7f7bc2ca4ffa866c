PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install dev demo test bench

install:
	$(PIP) -e .

dev:
	$(PIP) -e '.[dev]'

# The README's first command: install, train on the shipped corpus, sample, score.
demo: install
	$(PYTHON) -m lm train corpora/kitchen.txt
	$(PYTHON) -m lm sample --chars 200
	$(PYTHON) -m lm score "the apple and pear salad" "the apple and pair salad"

# The README's second command, and what .ci/run calls.
test: dev
	$(PYTHON) -m pytest

# lm against PyTorch on the same models and threads (needs ../shared/corpora; about 8 minutes).
bench:
	$(PIP) -e '.[bench]'
	$(PYTHON) bench/run.py
