PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install dev demo test bench ptb shakespeare

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

# lm against PyTorch on the same models and threads (needs ../shared/corpora; 8-10 minutes).
bench:
	$(PIP) -e '.[bench]'
	$(PYTHON) bench/run.py

# Published recipes on ../shared/corpora (README, Results). CORPORA=dir points elsewhere.
CORPORA ?= ../shared/corpora

# Zaremba et al. (2014), the small non-dropout LSTM: SGD lr 1, halved each epoch after the 4th,
# clip 5, batch 20 x 20 steps; as many of its 13 epochs as fit in 29 minutes of training.
ptb: install
	mkdir -p models
	rm -f models/ptb.resume.npz  # a fixed budget: always from scratch
	$(PYTHON) -m lm train $(CORPORA)/ptb.train.txt --valid $(CORPORA)/ptb.valid.txt -m models/ptb.npz \
		--tokenizer whitespace --layers 2 --hidden 200 --embed 200 --batch-size 20 --seq-len 20 \
		--optimizer sgd --lr 1 --lr-decay 0.5 --decay-after 4 --clip 5 --epochs 13 --max-time 1740
	$(PYTHON) -m lm eval $(CORPORA)/ptb.valid.txt -m models/ptb.npz

# Character level: 2 x 256 GRU, Adam 2e-3 halved each epoch after the 5th, batch 50 x 50 steps;
# as many of its 10 epochs as fit in 9.5 minutes of training.
shakespeare: install
	mkdir -p models
	rm -f models/shakespeare.resume.npz  # a fixed budget: always from scratch
	$(PYTHON) -m lm train $(CORPORA)/tinyshakespeare.txt -m models/shakespeare.npz --valid-fraction 0.1 \
		--cell gru --layers 2 --hidden 256 --embed 64 --batch-size 50 --seq-len 50 \
		--lr 2e-3 --lr-decay 0.5 --decay-after 5 --epochs 10 --max-time 570
	$(PYTHON) -m lm sample -m models/shakespeare.npz --chars 400 --temperature 0.8 --seed 1

# The notes' "the cat, which ..., was full": RNN, GRU and LSTM of equal size on a generated
# agreement corpus, accuracy by gap between subject and verb (about 10 minutes on 2 cores).
# The JSON goes to models/, which git ignores, beside the recipes' models.
.PHONY: long-range
long-range: install
	mkdir -p models
	$(PYTHON) bench/long_range.py --out models/long_range.json
