#!/usr/bin/env python3
"""Generate the subject-verb agreement corpus of the notes' vanishing-gradient story.

    the cat , which already ate the ripe pears and the cake , was full .
    the cats , which already ate the ripe pear and the cakes , were full .

The verb agrees with the subject noun, and a relative clause of a chosen number of words
(the gap, 0 to --max-gap) separates the two. Nothing in the clause tells the subject's
number: its verbs are in the past tense ("ate", "chased"), which English does not mark
for number, and it never holds "was" or "were". It does hold nouns of both numbers,
chosen independently of the subject ("the pears", "the farmer"): attractors, so a model
that copies the number of the last noun it saw is right only half the time, and only
one that remembers the subject across the whole clause gets every sentence right.

Clauses, by gap: 0 words, none ("the cat was full ."); 1 word, an aside ("the cats ,
too , were full ."); 2 or more, "which" and verb phrases joined by "and", each an optional
adverb, a verb, objects joined by "and" (some with a nested clause: "the apples that the
farmer grew") and an optional place ("in the old barn"). Every length is reached exactly.

Writes three files to OUTDIR, one sentence a line, tokens separated by spaces (train with
`--tokenizer whitespace`):
    train.txt   --sentences sentences, half of them plural; gaps uniform over 0..--max-gap,
                except for a --short fraction with gaps uniform over 0..10, which gives
                a model more, and easier, examples to first find the subject's number in
    valid.txt   a tenth as many, drawn the same way
    pairs.tsv   for every gap in 0, 5, 10, ... up to --max-gap, --pairs sentences (half
                singular) with the grammatical verb and with the other one; columns gap,
                number (sg or pl), attractors (clause nouns of the other number), good, bad

The same seed and options give byte-identical files; each file has its own random stream.

Usage: python corpora/make_agreement.py OUTDIR [--seed N] [--sentences N] [--max-gap 50] [--pairs N]
                                              [--short FRACTION]
"""
import argparse
import random
from pathlib import Path

SEED = 20240607
SENTENCES = 30_000
MAX_GAP = 50
PAIRS = 200
SHORT = 0.5  # the fraction of sentences with short gaps, --short
SHORT_GAP = 10
EVAL_STEP = 5  # evaluation gaps: 0, 5, 10, ...

VERB = {"sg": "was", "pl": "were"}
# Subjects, with irregular plurals so the cue is the word, not a trailing "s".
SUBJECTS = {"sg": "cat dog horse goose mouse fox rabbit wolf ox goat".split(),
            "pl": "cats dogs horses geese mice foxes rabbits wolves oxen goats".split()}
PREDICATES = "full hungry tired happy asleep quiet".split()
ASIDES = "too however apparently again".split()  # the one-word clauses
# Nouns inside the clause, each in both numbers; none of them is ever a subject.
OBJECTS = {"sg": "apple pear cake bone carrot ball sandwich biscuit".split(),
           "pl": "apples pears cakes bones carrots balls sandwiches biscuits".split()}
PEOPLE = {"sg": "farmer baker neighbour gardener".split(),
          "pl": "farmers bakers neighbours gardeners".split()}
PLACES = {"sg": "garden barn kitchen shed field hedge".split(),
          "pl": "gardens barns kitchens sheds fields hedges".split()}
PREPOSITIONS = "in near behind under beside".split()
# Adjectives for each kind of noun, so "the ripe kitchen" never happens.
FOOD = "red ripe big small fresh sweet green soft".split()
KIND = "old young tall kind busy".split()
LOOKS = "old big small green quiet".split()
ADVERBS = "already quietly slowly happily often once never suddenly".split()
# Past tense only: the same form for a singular and a plural subject.
TRANSITIVE = "ate chased found saw smelled dropped carried hid liked licked pushed watched".split()
MADE = "grew baked bought picked washed sold".split()  # what people did to the objects
INTRANSITIVE = "slept waited played ran rested jumped sat wandered".split()

NUMBER = {word: number for table in (SUBJECTS, OBJECTS, PEOPLE, PLACES)
          for number, words in table.items() for word in words}
LONGEST_PHRASE = 12  # words in one verb phrase; longer clauses join several with "and"


def noun_phrase(rng: random.Random, nouns: dict, adjectives: list[str], n: int) -> list[str]:
    """"the", n - 2 adjectives and a noun of either number (2 <= n <= 4)."""
    return ["the", *rng.sample(adjectives, n - 2), rng.choice(nouns[rng.choice(("sg", "pl"))])]


def objects(rng: random.Random, n: int) -> list[str]:
    """Objects of exactly n >= 2 words: noun phrases joined by "and", some with a nested clause."""
    if n <= 4:
        return noun_phrase(rng, OBJECTS, FOOD, n)
    if 6 <= n <= 8 and rng.random() < 0.4:  # "the apples that the farmer grew"
        head = rng.choice([k for k in (2, 3) if 2 <= n - k - 2 <= 3])
        return [*noun_phrase(rng, OBJECTS, FOOD, head), "that", *noun_phrase(rng, PEOPLE, KIND, n - head - 2),
                rng.choice(MADE)]
    head = 2 if n < 6 else rng.choice((2, 3))
    return [*noun_phrase(rng, OBJECTS, FOOD, head), "and", *objects(rng, n - head - 1)]


def place(rng: random.Random, n: int) -> list[str]:
    """A preposition and a place, 3 or 4 words: "near the old barns"."""
    return [rng.choice(PREPOSITIONS), *noun_phrase(rng, PLACES, LOOKS, n - 1)]


def verb_phrase(rng: random.Random, n: int) -> list[str]:
    """A verb phrase of exactly n >= 1 words: [adverb] verb [objects] [place]."""
    if n <= 2:
        return [rng.choice(ADVERBS)] * (n - 1) + [rng.choice(INTRANSITIVE)]
    words = [rng.choice(ADVERBS)] if n >= 4 and rng.random() < 0.3 else []
    n -= len(words)
    if n in (4, 5) and rng.random() < 0.25:
        return [*words, rng.choice(INTRANSITIVE), *place(rng, n - 1)]
    tail = place(rng, rng.choice((3, 4))) if n >= 7 and rng.random() < 0.3 else []
    return [*words, rng.choice(TRANSITIVE), *objects(rng, n - 1 - len(tail)), *tail]


def clause(rng: random.Random, n: int) -> list[str]:
    """The words between the subject's comma and the verb's: exactly n of them."""
    if n <= 1:
        return [rng.choice(ASIDES)] * n
    words, left = ["which"], n - 1
    while left > LONGEST_PHRASE or (left > 3 and rng.random() < 0.5):
        size = rng.randint(1, min(LONGEST_PHRASE, left - 2))  # leaves room for "and" and a phrase
        words += [*verb_phrase(rng, size), "and"]
        left -= size + 1
    return words + verb_phrase(rng, left)


def sentence(rng: random.Random, gap: int, number: str) -> list[str]:
    """The tokens of one sentence whose subject has `number` ("sg" or "pl")."""
    middle = clause(rng, gap)
    commas = [",", *middle, ","] if gap else []
    return ["the", rng.choice(SUBJECTS[number]), *commas, VERB[number], rng.choice(PREDICATES), "."]


def attractors(tokens: list[str]) -> int:
    """Nouns in the clause whose number is not the subject's."""
    subject = NUMBER[tokens[1]]
    return sum(NUMBER.get(word, subject) != subject for word in tokens[2:-3])


def corpus(rng: random.Random, count: int, max_gap: int, short: float) -> str:
    """count sentences; a `short` fraction of them with gaps of at most SHORT_GAP."""
    lines = []
    for _ in range(count):
        longest = min(SHORT_GAP, max_gap) if rng.random() < short else max_gap
        lines.append(sentence(rng, rng.randint(0, longest), rng.choice(("sg", "pl"))))
    return "".join(" ".join(tokens) + "\n" for tokens in lines)


def pairs(rng: random.Random, count: int, max_gap: int) -> str:
    """The evaluation pairs as TSV: the sentence and the same with the other verb."""
    rows = ["gap\tnumber\tattractors\tgood\tbad\n"]
    for gap in range(0, max_gap + 1, EVAL_STEP):
        for i in range(count):
            number = ("sg", "pl")[i % 2]
            good = sentence(rng, gap, number)
            bad = [*good[:-3], VERB["pl" if number == "sg" else "sg"], *good[-2:]]
            rows.append(f"{gap}\t{number}\t{attractors(good)}\t{' '.join(good)}\t{' '.join(bad)}\n")
    return "".join(rows)


def write(outdir: Path, seed: int = SEED, sentences: int = SENTENCES, max_gap: int = MAX_GAP,
          pair_count: int = PAIRS, short: float = SHORT) -> dict[str, Path]:
    """Write train.txt, valid.txt and pairs.tsv to outdir; their paths by name."""
    outdir.mkdir(parents=True, exist_ok=True)
    # A string seed per file: the pairs stay the same whatever --sentences is.
    texts = {"train": corpus(random.Random(f"{seed}:train"), sentences, max_gap, short),
             "valid": corpus(random.Random(f"{seed}:valid"), max(1, sentences // 10), max_gap, short),
             "pairs": pairs(random.Random(f"{seed}:pairs"), pair_count, max_gap)}
    paths = {}
    for name, text in texts.items():
        paths[name] = outdir / ("pairs.tsv" if name == "pairs" else f"{name}.txt")
        paths[name].write_text(text, encoding="utf-8", newline="\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--sentences", type=int, default=SENTENCES, help="training sentences")
    parser.add_argument("--max-gap", type=int, default=MAX_GAP, help="longest clause, in words")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="evaluation pairs per gap")
    parser.add_argument("--short", type=float, default=SHORT,
                        help=f"the fraction of sentences with gaps of at most {SHORT_GAP}, the rest up to --max-gap")
    args = parser.parse_args()
    if args.max_gap < 0 or args.sentences < 1 or args.pairs < 1 or not 0 <= args.short <= 1:
        parser.error("--max-gap must be at least 0, --sentences and --pairs at least 1, --short in 0..1")
    write(args.outdir, args.seed, args.sentences, args.max_gap, args.pairs, args.short)


if __name__ == "__main__":
    main()
