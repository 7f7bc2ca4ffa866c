#!/usr/bin/env python3
"""Generate kitchen.txt, the small default training corpus for `lm`.

The text is produced by a tiny probabilistic grammar of English sentences
about kitchens, markets, cooking and meals. It is written so that "pear"
is common in food contexts ("the apple and pear salad") while "pair" only
shows up rarely and never near food, which gives models trained on it a
clear preference between the two homophones.

Usage: python corpora/make_kitchen.py [OUTPUT_PATH] [TARGET_BYTES]
"""
import random
import re
import sys
from pathlib import Path

TARGET_BYTES = 300_000
SEED = 20240601
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "kitchen.txt"

# Each rule lists alternatives separated by "|"; repeating an alternative is
# how it is made more likely (e.g. "pear" is listed several times).
RULES = {
    "name": "Anna|Tom|Maria|Sam|Lucy|Ben|Clara|Omar|Nina|Jack|Rosa|Leo|Ella|"
            "Hugo|Mia|Felix|Ada|Noah|Ivy|Oscar|Grace|Theo",
    "person": "{name}|{name}|{name}|the cook|the chef|my grandmother|our neighbour|"
              "the baker|her brother|his sister|the old farmer|a young waiter|"
              "my aunt|the children|my father|her mother",
    "friends": "her friends|his friends|their neighbours|the whole family|"
               "six hungry guests|a few old friends|everyone at the table|"
               "the farmers from the market|his cousins|her colleagues",
    "fruit": "apple|apple|pear|pear|pear|plum|peach|lemon|orange|fig|apricot|"
             "quince|melon|mango|cherry|lime|nectarine",
    "fruits": "apples|apples|pears|pears|pears|plums|peaches|lemons|oranges|figs|"
              "apricots|cherries|grapes|strawberries|raspberries|blackberries|"
              "melons|quinces",
    "veg": "onion|carrot|leek|cucumber|cabbage|potato|tomato|pumpkin|beetroot|"
           "turnip|parsnip|squash|mushroom|pea|bean",
    "vegs": "onions|carrots|leeks|potatoes|tomatoes|beans|peas|mushrooms|radishes|"
            "turnips|parsnips|peppers|cucumbers|shallots|lettuces",
    "herb": "basil|parsley|mint|thyme|rosemary|dill|sage|coriander|chives|bay leaves",
    "spice": "salt|black pepper|cinnamon|nutmeg|ginger|cumin|paprika|honey|sugar",
    "liquid": "olive oil|lemon juice|butter|cream|vinegar|stock|water|white wine|milk",
    "ripe": "ripe|sweet|juicy|crisp|firm|soft|fresh|green|golden|red|fragrant|"
            "tart|small|large|perfect|bruised|sour|heavy",
    "ready": "ripe|sweet|soft|firm|juicy",
    "good": "delicious|wonderful|perfect|lovely|excellent|too salty|a little sweet|"
            "surprisingly good|better than last time|the best thing on the table",
    "mood": "happy|tired|hungry|busy|cheerful|pleased|nervous|proud|calm|sleepy",
    "prep": "washed|peeled|sliced|chopped|diced|grated|rinsed|cut|halved|"
            "quartered|mashed|roasted|boiled|fried|baked|stewed|poached|"
            "seasoned|tasted|weighed|picked|sorted",
    "cook": "cooked|made|prepared|planned|put together|laid out",
    "went": "walked|hurried|cycled|strolled|drove|ran|wandered",
    "dish": "salad|soup|stew|pie|tart|crumble|sauce|jam|pudding|risotto|"
            "omelette|sandwiches|casserole|curry|pancakes|salad|salad",
    "dish_full": "{fruit} tart|{fruit} jam|{veg} soup|{fruit} crumble|{herb} sauce|"
                 "{veg} stew|green salad|fruit salad|potato salad|roast chicken|"
                 "fish pie|lentil soup|bean stew|{fruit} and ginger cake|pear tart",
    "savoury": "{veg} soup|{veg} stew|{veg} soup|potato salad|lentil soup|bean stew|"
               "roast chicken|fish pie|green salad|vegetable curry",
    "aps": "apple and pear salad|apple and pear salad|apple and pear salad|"
           "apple and pear tart|apple and pear crumble|apple and pear pie",
    "meal": "breakfast|lunch|dinner|supper|a picnic|a late lunch|a quiet supper|"
            "a birthday dinner|a big breakfast|a feast|a simple meal",
    "side": "fresh bread|a bowl of soup|roast potatoes|soft cheese|toasted walnuts|"
            "a glass of cider|grilled fish|a spoonful of yogurt",
    "time": "this morning|on Sunday|on Saturday morning|before lunch|yesterday|"
            "last night|in the evening|early on Friday|after work|at noon",
    "when": "In the morning|After the rain stopped|When the guests arrived|"
            "Before the market opened|While the soup was simmering|On Saturday|"
            "Later that evening|As the sun came out|Once the kettle boiled|"
            "Every autumn|On the first cold day",
    "weather": "it rained all morning|the sun was warm|a cold wind blew|it was foggy|"
               "the sky was grey|it began to snow|a light rain fell on the awnings|"
               "the morning was bright and still|it was hot and dusty",
    "market": "the market|the market|the market square|the covered market|"
              "the village market|the night market",
    "stall": "the fruit stall|the fish stall|the cheese stall|the flower stall|"
             "the bakery|the spice stall|the vegetable stall|the egg stall",
    "seller": "the fruit seller|the fishmonger|the baker|an old farmer|"
              "the cheese maker|a woman with a basket|the grocer",
    "tool": "knife|pan|pot|bowl|chopping board|grater|spoon|whisk|colander|"
            "ladle|kettle|peeler|sieve|frying pan",
    "container": "basket|bag|crate|box|bowl|paper bag|wooden box",
    "surface": "the table|the counter|the window sill|the shelf|the stove|"
               "the kitchen table|the top shelf",
    "smell": "baked apples|fresh bread|onions frying|warm pears and cinnamon|"
             "roasting garlic|coffee|vegetable soup|lemons|burnt sugar",
    "num": "two|three|four|six|ten|a dozen|a few|several",
    "qty": "{num}|{num}|a basket of|a bag of|a kilo of|a crate of",
    "reason": "they were cheap this week|the guests were hungry|it was a cold day|"
              "{name} loved them|the season was almost over|nobody else would",
    "pair_item": "gloves|boots|socks|scissors|sandals|wool gloves|rubber boots",
}
RULES = {key: value.split("|") for key, value in RULES.items()}

# (weight, template). Apple-and-pear templates get about 3.5% of the weight
# and "pair" templates about 0.4%, which sets their frequency in the corpus.
TEMPLATES = [
    (10, "{person} {prep} the {fruits} and {prep} a {ripe} {fruit} for the {dish}."),
    (8, "At {market}, {person} bought {qty} {fruits} and {qty} {vegs}."),
    (6, "{when}, {person} {cook} {meal} for {friends}."),
    (6, "{person} {cook} {meal} for {friends}, and everyone said it was {good}."),
    (5, "The {fruits} at the fruit stall were {ripe} and {ripe}, so {person} bought {num} of them."),
    (5, "{weather} at the market, so {person} {went} quickly past {stall}."),
    (5, "{person} put the {tool} on {surface} and {prep} the {vegs} for the {savoury}."),
    (4, "{person} asked {seller} whether the {fruits} were {ready} enough."),
    (4, "Did {person} remember to buy {herb} for the {dish_full}?"),
    (3, "Is the {dish_full} ready, or should we wait for {name}?"),
    (4, "{person} added {herb}, {spice} and a little {liquid} to the {dish}."),
    (4, "The kitchen smelled of {smell}, and {person} was {mood}."),
    (3, "{person} and {name} {went} to {market} {time}, where {seller} sold them {qty} {fruits}."),
    (3, "{person} kept the {fruits} in a {container} on {surface} so they would ripen."),
    (3, "{person} bought local {fruits} instead of imported ones, because {reason}."),
    (3, "{person} said that a good {dish} needs {ripe} {fruits} and a sharp {tool}."),
    (2, "Why did {person} put {fruits} in the {dish}?"),
    (2, "{seller} gave {person} a {ripe} {fruit} to taste."),
    (2, "{when}, {weather}, and {person} stayed in the kitchen making {dish_full}."),
    (2, "A {ripe} {fruit} rolled off {surface}, and {name} laughed."),
    (2, "For {meal}, {person} served {dish_full} with {side}."),
    # The apple-and-pear dish, the phrase the corpus is meant to teach.
    (0.8, "{person} made the apple and pear salad {time}."),
    (0.6, "{when}, {person} served an {aps} with {side}."),
    (0.6, "The {aps} was {good}."),
    (0.4, "Everyone agreed that the apple and pear salad was delicious."),
    (0.3, "Is there any of the {aps} left?"),
    (0.3, "{person} bought {ripe} pears at {market} for the apple and pear salad."),
    (0.2, "{person} sliced two apples and a pear for the apple and pear tart."),
    # "pair" only in non-food settings, rarely.
    (0.2, "{person} bought a pair of {pair_item} at {market}."),
    (0.1, "The pair of them {went} to {market} {time}."),
    (0.1, "{person} put on a pair of {pair_item} before going out."),
]
WEIGHTS = [weight for weight, _ in TEMPLATES]

SLOT = re.compile(r"\{(\w+)\}")
# The grammar always writes "a"; fix it up before vowels once the words are known.
ARTICLE = re.compile(r"\b([Aa]) (?=[aeiou])")


def expand(text: str, rng: random.Random) -> str:
    return SLOT.sub(lambda m: expand(rng.choice(RULES[m.group(1)]), rng), text)


def sentence(rng: random.Random) -> str:
    template = rng.choices(TEMPLATES, weights=WEIGHTS)[0][1]
    text = ARTICLE.sub(r"\1n ", expand(template, rng))
    return text[0].upper() + text[1:]


def generate(target_bytes: int, seed: int = SEED) -> str:
    rng = random.Random(seed)
    lines, size = [], 0
    while True:
        line = sentence(rng) + "\n"
        size += len(line.encode("utf-8"))
        if size > target_bytes:
            return "".join(lines)
        lines.append(line)


def main(argv: list[str]) -> None:
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    target = int(argv[2]) if len(argv) > 2 else TARGET_BYTES
    output.write_text(generate(target), encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main(sys.argv)
