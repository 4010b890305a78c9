"""Write the gemma3-scratch samples in data/: a trilingual corpus and clarification pairs.

    python scripts/make_scratch_samples.py

- data/scratch_corpus_sample.jsonl   one sentence per row: {text, lang, source}; lang is the
                                     ISO 639-1 code (as = Assamese, hi = Hindi, en = English)
- data/scratch_clarify_sample.jsonl  {question, clarified_question, lang, source}: an
                                     incomplete or ambiguous question and its clear rewrite

The corpus is the same 48 simple sentences in each language (written for this project, the
Assamese and Hindi as a speaker would write them: Assamese ৰ/ৱ, the danda). The tokenizer
stage samples it in the recipe's language ratios, so Assamese, at 0.5, uses every row and
the other two languages fewer. Clarification pairs follow a few patterns per language, so a
random miniature can learn them on a CPU in seconds. Deterministic: rerunning writes the
same files.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
SOURCE = "slothlab-sample"

# (English, Hindi, Assamese): the same sentence in each language.
SENTENCES: list[tuple[str, str, str]] = [
    ("I eat rice every day.", "मैं हर दिन चावल खाता हूँ।", "মই প্ৰতিদিনে ভাত খাওঁ।"),
    ("He reads a book.", "वह एक किताब पढ़ता है।", "সি এখন কিতাপ পঢ়ে।"),
    ("It is raining today.", "आज बारिश हो रही है।", "আজি বৰষুণ দি আছে।"),
    ("The sky is blue.", "आसमान नीला है।", "আকাশখন নীলা।"),
    ("The water is cold.", "पानी ठंडा है।", "পানীখিনি ঠাণ্ডা।"),
    ("My name is Ram.", "मेरा नाम राम है।", "মোৰ নাম ৰাম।"),
    ("We live in Guwahati.", "हम गुवाहाटी में रहते हैं।", "আমি গুৱাহাটীত থাকোঁ।"),
    ("The Brahmaputra is a big river.", "ब्रह्मपुत्र एक बड़ी नदी है।", "ব্ৰহ্মপুত্ৰ এখন ডাঙৰ নদী।"),
    ("Assam is famous for its tea.", "असम अपनी चाय के लिए प्रसिद्ध है।", "অসম চাহৰ বাবে বিখ্যাত।"),
    ("She is a teacher.", "वह एक शिक्षिका है।", "তেওঁ এগৰাকী শিক্ষয়িত্ৰী।"),
    ("I go to school.", "मैं स्कूल जाता हूँ।", "মই বিদ্যালয়লৈ যাওঁ।"),
    ("My mother cooks rice.", "मेरी माँ चावल पकाती है।", "মোৰ মায়ে ভাত ৰান্ধে।"),
    ("The cat is sleeping.", "बिल्ली सो रही है।", "মেকুৰীটো শুই আছে।"),
    ("There is a bird in the tree.", "पेड़ पर एक चिड़िया है।", "গছত এটা চৰাই আছে।"),
    ("I like tea.", "मुझे चाय पसंद है।", "মই চাহ ভাল পাওঁ।"),
    ("The market is far away.", "बाज़ार दूर है।", "বজাৰখন দূৰত।"),
    ("We celebrate Bihu.", "हम बिहू मनाते हैं।", "আমি বিহু পালন কৰোঁ।"),
    ("The sun rises in the east.", "सूरज पूर्व में उगता है।", "সূৰ্য পূব দিশত উদয় হয়।"),
    ("The train arrived late.", "रेलगाड़ी देर से आई।", "ৰেলখন পলমকৈ আহিল।"),
    ("This mango is sweet.", "यह आम मीठा है।", "এই আমটো মিঠা।"),
    ("My brother plays football.", "मेरा भाई फ़ुटबॉल खेलता है।", "মোৰ ভায়ে ফুটবল খেলে।"),
    ("I drink water.", "मैं पानी पीता हूँ।", "মই পানী খাওঁ।"),
    ("The flowers are red.", "फूल लाल हैं।", "ফুলবোৰ ৰঙা।"),
    ("She sings a song.", "वह एक गाना गाती है।", "তাই এটা গীত গায়।"),
    ("The road is wide.", "सड़क चौड़ी है।", "ৰাস্তাটো বহল।"),
    ("We went to the market yesterday.", "हम कल बाज़ार गए थे।", "আমি কালি বজাৰলৈ গৈছিলোঁ।"),
    ("The doctor is in the hospital.", "डॉक्टर अस्पताल में हैं।", "ডাক্তৰজন হাস্পতালত আছে।"),
    ("I write a letter.", "मैं एक चिट्ठी लिखता हूँ।", "মই এখন চিঠি লিখোঁ।"),
    ("The elephant is big.", "हाथी बड़ा है।", "হাতীটো ডাঙৰ।"),
    ("Paddy grows in the field.", "खेत में धान उगता है।", "পথাৰত ধান হয়।"),
    ("The night is dark.", "रात अंधेरी है।", "ৰাতিটো আন্ধাৰ।"),
    ("My father works in an office.", "मेरे पिता एक दफ़्तर में काम करते हैं।",
     "মোৰ দেউতাই এটা কাৰ্যালয়ত কাম কৰে।"),
    ("The book is on the table.", "किताब मेज़ पर है।", "কিতাপখন মেজৰ ওপৰত আছে।"),
    ("Winter is cold.", "सर्दी का मौसम ठंडा होता है।", "জাৰকালি ঠাণ্ডা পৰে।"),
    ("I am learning Assamese.", "मैं असमिया सीख रहा हूँ।", "মই অসমীয়া শিকি আছোঁ।"),
    ("The dog is running.", "कुत्ता दौड़ रहा है।", "কুকুৰটো দৌৰি আছে।"),
    ("The tea gardens are green.", "चाय के बागान हरे हैं।", "চাহ বাগিচাবোৰ সেউজীয়া।"),
    ("We eat fish and rice.", "हम मछली और चावल खाते हैं।", "আমি মাছ আৰু ভাত খাওঁ।"),
    ("The river is flowing.", "नदी बह रही है।", "নদীখন বৈ আছে।"),
    ("Today is Monday.", "आज सोमवार है।", "আজি সোমবাৰ।"),
    ("The shop is closed.", "दुकान बंद है।", "দোকানখন বন্ধ।"),
    ("He is my friend.", "वह मेरा दोस्त है।", "সি মোৰ বন্ধু।"),
    ("The children are going to school.", "बच्चे स्कूल जा रहे हैं।", "শিশুবোৰ বিদ্যালয়লৈ গৈ আছে।"),
    ("Milk is white.", "दूध सफ़ेद होता है।", "গাখীৰ বগা।"),
    ("I have two pens.", "मेरे पास दो कलम हैं।", "মোৰ দুটা কলম আছে।"),
    ("The boat is on the river.", "नाव नदी पर है।", "নাওখন নদীত আছে।"),
    ("Grandmother tells stories.", "दादी कहानियाँ सुनाती हैं।", "আইতাই সাধু কয়।"),
    ("The moon is bright tonight.", "आज रात चाँद चमकीला है।", "আজি ৰাতি জোনটো উজ্জ্বল।"),
]

# Clarification patterns per language: (incomplete question, clear question) with fillers.
PRICE = {
    "en": ("{x} price?", "What is the price of {x} today?",
           ["rice", "tea", "fish", "milk", "sugar"]),
    "hi": ("{x} का दाम?", "आज {x} का दाम क्या है?", ["चावल", "चाय", "मछली", "दूध", "चीनी"]),
    "as": ("{x}ৰ দাম?", "আজি {x}ৰ দাম কিমান?", ["চাউল", "চাহ", "মাছ", "গাখীৰ", "চেনি"]),
}
DISTANCE = {
    "en": ("how far {x}?", "How far is {x} from here?",
           ["the station", "the hospital", "the market", "the school", "the river"]),
    "hi": ("{x} कितनी दूर?", "यहाँ से {x} कितनी दूर है?",
           ["स्टेशन", "अस्पताल", "बाज़ार", "स्कूल", "नदी"]),
    "as": ("{x} কিমান দূৰ?", "ইয়াৰ পৰা {x} কিমান দূৰ?",
           ["ষ্টেচন", "হাস্পতাল", "বজাৰ", "বিদ্যালয়", "নদী"]),
}
# Opening hours: Hindi verbs agree with the place's gender, so each filler carries its verb.
OPENING = {
    "en": [(f"{p} timing?", f"At what time does the {p} open?")
           for p in ("bank", "library", "post office", "shop", "museum")],
    "hi": [(f"{p} का समय?", f"{p} किस समय {verb} है?")
           for p, verb in (("बैंक", "खुलता"), ("पुस्तकालय", "खुलता"), ("डाकघर", "खुलता"),
                           ("दुकान", "खुलती"), ("संग्रहालय", "खुलता"))],
    "as": [(f"{p}ৰ সময়?", f"{p} কেইটা বজাত খোলে?")
           for p in ("বেংক", "পুথিভঁৰাল", "ডাকঘৰ", "দোকান", "সংগ্ৰহালয়")],
}
WEATHER = {
    "en": ("weather {x}?", "What will the weather be like {x}?",
           ["today", "tomorrow", "on Sunday", "on Monday"]),
    "hi": ("{x} मौसम?", "{x} मौसम कैसा रहेगा?", ["आज", "कल", "रविवार को", "सोमवार को"]),
    "as": ("{x} বতৰ?", "{x} বতৰ কেনেকুৱা হ'ব?", ["আজি", "কাইলৈ", "দেওবাৰে", "সোমবাৰে"]),
}
LANGS = ("as", "hi", "en")


def corpus_rows() -> list[dict]:
    rows = []
    for en, hi, as_ in SENTENCES:
        for lang, text in (("as", as_), ("hi", hi), ("en", en)):
            rows.append({"text": text, "lang": lang, "source": SOURCE})
    return rows


def clarify_rows() -> list[dict]:
    rows = []
    for lang in LANGS:
        pairs: list[tuple[str, str]] = []
        for table in (PRICE, DISTANCE, WEATHER):
            short, full, fillers = table[lang]
            pairs += [(short.format(x=x), full.format(x=x)) for x in fillers]
        pairs += OPENING[lang]
        for question, clarified in pairs:
            question = question[0].upper() + question[1:] if lang == "en" else question
            rows.append({"question": question, "clarified_question": clarified, "lang": lang,
                         "source": SOURCE})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    write_jsonl(DATA / "scratch_corpus_sample.jsonl", corpus_rows())
    write_jsonl(DATA / "scratch_clarify_sample.jsonl", clarify_rows())


if __name__ == "__main__":
    main()
