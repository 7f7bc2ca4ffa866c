"""Peak memory of `lm train` on a large corpus, against the size of its token array.

    python bench/big_corpus.py [--mb 200] [--tokenizers char word]

Writes a corpus of about --mb megabytes (the shipped kitchen corpus, repeated) to a temporary
directory, then for each tokenizer runs `lm.train` on it in a fresh process: reading, fitting
the vocabulary, encoding, cutting batches and one second of training (no validation, so the
figure is the data path's). Prints the peak resident memory above the process's size after
import, as a multiple of the token array (tokens x 4 bytes, int32).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(corpus: str, tokenizer: str) -> None:
    import lm

    base = _rss_mib()
    start = time.perf_counter()
    tokens = {}

    def count(info):
        if isinstance(info, lm.StartInfo):
            tokens["n"] = info.train_tokens

    with tempfile.TemporaryDirectory() as out:
        lm.train(corpus, Path(out) / "m.npz", tokenizer=tokenizer, valid_fraction=0.0, epochs=1, max_time=1.0,
                 hidden=64, embed=32, on_progress=count)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens": tokens["n"], "base_mib": base, "peak_mib": peak,
                      "seconds": time.perf_counter() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--tokenizers", nargs="+", default=["char", "word"])
    parser.add_argument("--worker", nargs=2, metavar=("CORPUS", "TOKENIZER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    seed = (ROOT / "corpora" / "kitchen.txt").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "big.txt"
        repeats = int(args.mb * 2**20 / len(seed.encode("utf-8"))) + 1
        with open(corpus, "w", encoding="utf-8") as f:
            for _ in range(repeats):
                f.write(seed)
        size = corpus.stat().st_size / 2**20
        print(f"corpus: {size:.0f} MiB ({repeats} copies of corpora/kitchen.txt)\n")
        print("| tokenizer | tokens | token array (MiB) | peak above import (MiB) | multiple | seconds |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for tokenizer in args.tokenizers:
            run = subprocess.run([sys.executable, __file__, "--worker", str(corpus), tokenizer],
                                 capture_output=True, text=True, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            array = r["tokens"] * 4 / 2**20
            above = r["peak_mib"] - r["base_mib"]
            print(f"| {tokenizer} | {r['tokens']:,} | {array:,.0f} | {above:,.0f} | {above / array:.1f}x | "
                  f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
