"""`make bench`: lm against PyTorch on the same models, data and threads, side by side.

Each case runs in a fresh process per implementation, the two alternating for --rounds
rounds, each after its own warm-up; the table gives the median of each and their ratio.
Data: ../shared/corpora (or --corpora). Needs the bench extra: pip install -e '.[bench]'.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES  # noqa: E402

# case -> the least ratio of lm's tokens/s over PyTorch's that meets the target
TARGETS = {
    "word training, LSTM": 1.0,
    "char training, LSTM": 1.0,
    "word training, GRU": 1.0,
    "char training, GRU": 1.0,
    "sampling, 1 sequence": 2.0,
    "sampling, 64 sequences": 1.0,
    "scoring, lm eval": 1.0,
}
PEAK_FRACTION_TARGET = 0.5
SHARE = next(name for name, case in CASES.items() if case.share)  # the case whose share of the peak is reported
MEMORY_RATIO_TARGET = 1.5


def prepare(corpora: Path, out: Path) -> None:
    """Tokenize each corpus once, with lm's own tokenizers, into .npy id arrays both sides read."""
    from lm.config import TokenizerConfig
    from lm.data import read_text
    from lm.tokenizer import Tokenizer

    for kind, fit_on, files in [("whitespace", "ptb.train.txt", ["ptb.train.txt", "ptb.valid.txt"]),
                                ("char", "tinyshakespeare.txt", ["tinyshakespeare.txt"])]:
        tokenizer = Tokenizer.fit(read_text(corpora / fit_on), TokenizerConfig(tokenizer=kind))
        (out / f"{kind}.json").write_text(json.dumps(tokenizer.to_dict()))
        for name in files:
            import numpy as np

            np.save(out / f"{name}.npy", tokenizer.encode(read_text(corpora / name))[0])


def worker(impl: str, case: str, data: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "worker.py"), impl, case, str(data)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"bench: {impl} {case!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measured(impl: str, case: str, data: Path, env: dict) -> dict:
    """One run of a case. For the case whose share of the matmul peak is reported, also the peak
    measured in fresh processes just before and just after it, the higher of the two: the
    host's speed moves by up to a third within seconds (README, Speed), so a peak measured
    minutes apart is not the one the run had."""
    if case != SHARE:
        return worker(impl, case, data, env)
    before = worker("peak", "-", data, env)["gflops"]
    result = worker(impl, case, data, env)
    return {**result, "gflops": max(before, worker("peak", "-", data, env)["gflops"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=HERE.parent.parent / "shared" / "corpora")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="case names (default: all)")
    args = parser.parse_args()
    if not (args.corpora / "ptb.train.txt").exists():
        sys.exit(f"bench: no corpora in {args.corpora} (see ../shared/corpora/README.md); give --corpora DIR")
    try:
        import torch
    except ImportError:
        sys.exit("bench: PyTorch is the yardstick and is not installed: pip install -e '.[bench]'")
    env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "MKL_NUM_THREADS")}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(args.corpora, data)
        peak = max(worker("peak", "-", data, env)["gflops"] for _ in range(args.rounds))
        results = {}
        for name in args.cases:
            runs = {"ours": [], "torch": []}
            for r in range(args.rounds):
                for impl in ("ours", "torch") if r % 2 == 0 else ("torch", "ours"):
                    runs[impl].append(measured(impl, name, data, env))
                print(f"  {name}: round {r + 1}: lm {runs['ours'][-1]['rate']:,.0f}  "
                      f"PyTorch {runs['torch'][-1]['rate']:,.0f} tokens/s", file=sys.stderr, flush=True)
            results[name] = runs
    print(report(results, peak, args.threads, time.perf_counter() - started, torch.__version__))


def report(results: dict, peak: float, threads: int, seconds: float, torch_version: str) -> str:
    """The table: per case, the medians of each side's runs, their ratio, the lowest and
    highest ratio of one round's pair (how much the host moved), and the target."""
    median = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    word = results.get(SHARE)
    beside = f", median {median(word['ours'] + word['torch'], 'gflops'):.0f} beside the {SHARE} runs" if word else ""
    lines = [
        f"lm vs PyTorch {torch_version}, {date.today()}, {os.cpu_count()} cores, "
        f"{threads} threads each; medians of alternating runs; float32 matmul peak (NumPy) "
        f"{peak:.0f} GFLOP/s at the start of the run (the best of its measurements){beside}",
        "",
        "| case | lm | PyTorch | lm / PyTorch | rounds | target | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for name, runs in results.items():
        ours, ref = median(runs["ours"], "rate"), median(runs["torch"], "rate")
        pairs = [o["rate"] / t["rate"] for o, t in zip(runs["ours"], runs["torch"])]
        target = TARGETS[name]
        lines.append(f"| {name} (tokens/s) | {ours:,.0f} | {ref:,.0f} | {ours / ref:.2f}x | "
                     f"{min(pairs):.2f}-{max(pairs):.2f}x | {target:.1f}x | {'yes' if ours / ref >= target else 'NO'} |")
    if word:
        case = CASES[SHARE]
        for impl, label in (("ours", "lm"), ("torch", "PyTorch")):
            gflops = [3 * case.flops_per_token(r["vocab"]) * r["rate"] / 1e9 for r in word[impl]]
            # Each run's rate over the peak measured beside it: the two in the same few seconds.
            shares = [g / r["gflops"] for g, r in zip(gflops, word[impl])]
            share = statistics.median(shares)
            met = ("yes" if share >= PEAK_FRACTION_TARGET else "NO") if impl == "ours" else ""
            lines.append(f"| {SHARE}: {label}'s share of the matmul peak beside it | "
                         f"{statistics.median(gflops):.0f} GFLOP/s | | {share:.1%} | "
                         f"{min(shares):.1%}-{max(shares):.1%} | {PEAK_FRACTION_TARGET:.0%} | {met} |")
            lines.append(f"| {SHARE}: {label}'s share of the run's best peak | | | "
                         f"{statistics.median(gflops) / peak:.1%} | | | |")
        ours, ref = median(word["ours"], "peak_rss_mib"), median(word["torch"], "peak_rss_mib")
        lines.append(f"| {SHARE}: peak resident memory (MiB) | {ours:,.0f} | {ref:,.0f} | "
                     f"{ours / ref:.2f}x | | at most {MEMORY_RATIO_TARGET}x | {'yes' if ours / ref <= MEMORY_RATIO_TARGET else 'NO'} |")
        ours_g = median(word["ours"], "peak_rss_mib") - median(word["ours"], "base_rss_mib")
        ref_g = median(word["torch"], "peak_rss_mib") - median(word["torch"], "base_rss_mib")
        lines.append(f"| {SHARE}: memory growth from model and training (MiB) | {ours_g:,.0f} | "
                     f"{ref_g:,.0f} | {ours_g / ref_g:.2f}x | | at most {MEMORY_RATIO_TARGET}x | "
                     f"{'yes' if ours_g / ref_g <= MEMORY_RATIO_TARGET else 'NO'} |")
    lines += ["", f"({seconds / 60:.1f} minutes)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
