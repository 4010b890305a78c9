"""Write data/demo_qa.jsonl: short, regular Q&A pairs in FineTome's sharegpt schema.

    python scripts/make_demo_data.py

The demo trains a random miniature model on a CPU in about a minute, so its data has to be
learnable in that time: short answers that follow a few patterns and reuse the question's
words. The rows use the real FineTome-100k layout (``conversations`` of ``{from, value}``,
``source``, ``score``), so the demo runs the same loader as the FineTome recipe.
Deterministic: running it again writes the same file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin",
    "Portugal": "Lisbon", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Poland": "Warsaw", "Austria": "Vienna", "Ireland": "Dublin",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Ghana": "Accra", "Nigeria": "Abuja",
    "Senegal": "Dakar", "Ethiopia": "Addis Ababa", "Japan": "Tokyo", "China": "Beijing",
    "India": "New Delhi", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Peru": "Lima",
    "Chile": "Santiago", "Canada": "Ottawa", "Mexico": "Mexico City", "Cuba": "Havana",
    "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Australia": "Canberra",
    "Turkey": "Ankara", "Iran": "Tehran", "Morocco": "Rabat", "Tanzania": "Dodoma",
    "Uganda": "Kampala", "Rwanda": "Kigali", "Nepal": "Kathmandu", "Denmark": "Copenhagen",
    "Belgium": "Brussels",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "up": "down", "light": "dark",
    "happy": "sad", "early": "late", "full": "empty", "open": "closed", "hard": "soft",
    "high": "low", "old": "young", "rich": "poor", "strong": "weak", "wet": "dry",
    "loud": "quiet", "long": "short", "thick": "thin", "near": "far", "clean": "dirty",
    "heavy": "light", "first": "last", "inside": "outside", "top": "bottom", "win": "lose",
    "buy": "sell", "push": "pull", "give": "take", "day": "night", "true": "false",
}
SOUNDS = {
    "cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa",
    "pig": "oink", "horse": "neigh", "owl": "hoot", "lion": "roar", "frog": "croak",
    "bee": "buzz", "snake": "hiss", "goat": "bleat", "mouse": "squeak", "crow": "caw",
    "donkey": "bray", "rooster": "cock-a-doodle-doo", "wolf": "howl",
}
PLURALS = {
    "mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "man": "men",
    "woman": "women", "goose": "geese", "person": "people", "leaf": "leaves", "knife": "knives",
    "wolf": "wolves", "box": "boxes", "city": "cities", "baby": "babies", "bus": "buses",
    "fish": "fish", "sheep": "sheep", "cactus": "cacti", "potato": "potatoes", "hero": "heroes",
    "life": "lives", "half": "halves", "story": "stories", "church": "churches",
}
NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
]
SYSTEM = "You are a helpful assistant. Answer in one short sentence."


def pairs(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for country, city in CAPITALS.items():
        out.append((f"What is the capital of {country}?", f"The capital of {country} is {city}."))
    for word, opposite in OPPOSITES.items():
        out.append((f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."))
    for animal, sound in SOUNDS.items():
        out.append((f"What sound does a {animal} make?", f"A {animal} says {sound}."))
    for word, plural in PLURALS.items():
        out.append((f"What is the plural of {word}?", f"The plural of {word} is {plural}."))
    sums = [(a, b) for a in range(0, 11) for b in range(0, 11) if a + b <= 20]
    for a, b in sums:
        out.append((f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
    for n in range(0, 20):
        out.append((f"What number comes after {NUMBER_WORDS[n]}?",
                    f"The number after {NUMBER_WORDS[n]} is {NUMBER_WORDS[n + 1]}."))
    return out


def main() -> None:
    rng = random.Random(20261121)
    rows = []
    for i, (question, answer) in enumerate(pairs(rng)):
        turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        if i % 5 == 0:  # FineTome has system turns in some rows; keep a share of them.
            turns.insert(0, {"from": "system", "value": SYSTEM})
        rows.append({"conversations": turns, "source": "slothlab-demo", "score": 5.0})
    rng.shuffle(rows)
    out = Path(__file__).resolve().parents[1] / "data" / "demo_qa.jsonl"
    with open(out, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
