"""Write the recipes' sample datasets in data/, each in its real source schema.

    python scripts/make_samples.py

- data/finetome_sample.jsonl   FineTome-100k layout: conversations [{from, value}], source, score
- data/medquad_sample.csv      MedQuAD Kaggle layout: question, answer, source, focus_area
- data/afrimedqa_sample.csv    AfriMed-QA v2 layout (the columns the recipe reads, and more)
- data/saudial_sample.xlsx     SauDial layout: Dialect, English Text, Dialect Translation,
                               In-Game Context — with the messiness of a hand-kept sheet

Tiny mode trains a random miniature for a minute, so rows are short and regular: enough for
the loss to fall and the held-out answers to improve. The facts are general knowledge written
for this project; none of it is copied from the real datasets. Deterministic.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"

# ---------------------------------------------------------------------------- FineTome

PLANETS = {"Mercury": "first", "Venus": "second", "Earth": "third", "Mars": "fourth",
           "Jupiter": "fifth", "Saturn": "sixth", "Uranus": "seventh", "Neptune": "eighth"}
ELEMENTS = {"hydrogen": "H", "helium": "He", "carbon": "C", "nitrogen": "N", "oxygen": "O",
            "sodium": "Na", "iron": "Fe", "copper": "Cu", "silver": "Ag", "gold": "Au",
            "calcium": "Ca", "zinc": "Zn", "lead": "Pb", "tin": "Sn", "neon": "Ne"}
UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("hours", "minutes", 60),
         ("minutes", "seconds", 60), ("kilograms", "grams", 1000), ("litres", "millilitres", 1000)]
SYNONYMS = {"happy": "glad", "big": "large", "fast": "quick", "smart": "clever", "tired": "weary",
            "angry": "furious", "begin": "start", "end": "finish", "help": "assist",
            "small": "little", "quiet": "silent", "brave": "bold", "easy": "simple",
            "hard": "difficult", "rich": "wealthy", "funny": "amusing"}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
LEGS = {"spider": 8, "ant": 6, "bee": 6, "dog": 4, "cat": 4, "horse": 4, "chicken": 2,
        "duck": 2, "octopus": 8, "crab": 10, "snake": 0, "human": 2}
FRUIT = {"banana": "yellow", "lime": "green", "cherry": "red", "blueberry": "blue",
         "orange": "orange", "plum": "purple", "coconut": "brown", "strawberry": "red",
         "grape": "green or purple", "lemon": "yellow"}
SYSTEMS = ["You are a helpful assistant.", "You are a concise tutor. Answer in one sentence."]


def finetome_rows(rng: random.Random) -> list[dict]:
    pairs: list[list[tuple[str, str]]] = []
    for planet, order in PLANETS.items():
        pairs.append([(f"Which planet is {planet} from the Sun?",
                       f"{planet} is the {order} planet from the Sun.")])
    for name, symbol in ELEMENTS.items():
        pairs.append([(f"What is the chemical symbol for {name}?",
                       f"The chemical symbol for {name} is {symbol}.")])
    for big, small, factor in UNITS:
        for n in (2, 3, 5, 7, 9):
            pairs.append([(f"How many {small} are in {n} {big}?",
                           f"There are {n * factor} {small} in {n} {big}.")])
    for word, synonym in SYNONYMS.items():
        pairs.append([(f"Give me a synonym for '{word}'.", f"A synonym for '{word}' is '{synonym}'.")])
    for i, day in enumerate(DAYS):
        pairs.append([(f"What day comes after {day}?",
                       f"The day after {day} is {DAYS[(i + 1) % 7]}.")])
    for i, month in enumerate(MONTHS):
        pairs.append([(f"Which month comes after {month}?",
                       f"The month after {month} is {MONTHS[(i + 1) % 12]}.")])
    for n in range(1, 21):
        pairs.append([(f"What is the square of {n}?", f"The square of {n} is {n * n}.")])
    for animal, legs in LEGS.items():
        pairs.append([(f"How many legs does a {animal} have?", f"A {animal} has {legs} legs.")])
    for fruit, colour in FRUIT.items():
        pairs.append([(f"What colour is a ripe {fruit}?", f"A ripe {fruit} is {colour}.")])
    for a in range(2, 10):
        for b in (3, 4, 6):
            pairs.append([(f"What is {a} times {b}?", f"{a} times {b} is {a * b}."),
                          ("And if you add one?", f"Adding one gives {a * b + 1}.")])
    rows = []
    for i, turns in enumerate(pairs):
        conversation = []
        if i % 4 == 0:
            conversation.append({"from": "system", "value": SYSTEMS[i % 8 // 4]})
        for question, answer in turns:
            conversation += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        rows.append({"conversations": conversation, "source": "slothlab-sample",
                     "score": round(4.5 + rng.random() / 2, 3)})
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------- MedQuAD + AfriMed

CONDITIONS = {
    "Malaria": ("a parasite spread by the bite of infected mosquitoes",
                "fever, chills, headache and body aches",
                "antimalarial medicines such as artemisinin combination therapy"),
    "Asthma": ("a long-term disease that inflames and narrows the airways",
               "wheezing, coughing, chest tightness and shortness of breath",
               "inhalers that relax the airways and medicines that reduce inflammation"),
    "Hypertension": ("blood pressure that stays higher than normal",
                     "often no symptoms at all, sometimes headaches",
                     "lifestyle changes and blood pressure medicines"),
    "Type 2 diabetes": ("a condition in which blood sugar stays too high",
                        "thirst, frequent urination, tiredness and blurred vision",
                        "diet, exercise, metformin and sometimes insulin"),
    "Anemia": ("a shortage of healthy red blood cells",
               "tiredness, weakness, pale skin and shortness of breath",
               "iron supplements or treating the underlying cause"),
    "Tuberculosis": ("a bacterial infection that mainly affects the lungs",
                     "a long-lasting cough, fever, night sweats and weight loss",
                     "several antibiotics taken for at least six months"),
    "Glaucoma": ("a group of eye diseases that damage the optic nerve",
                 "gradual loss of side vision, often unnoticed at first",
                 "eye drops, laser treatment or surgery to lower eye pressure"),
    "Migraine": ("a disorder of repeated, often one-sided headaches",
                 "throbbing headache, nausea and sensitivity to light",
                 "pain relievers, rest in a dark room and preventive medicines"),
    "Pneumonia": ("an infection that inflames the air sacs of the lungs",
                  "cough, fever, chills and difficulty breathing",
                  "antibiotics for bacterial pneumonia, rest and fluids"),
    "Cholera": ("an intestinal infection caused by contaminated water or food",
                "severe watery diarrhea and dehydration",
                "oral rehydration salts and sometimes antibiotics"),
    "Typhoid fever": ("a bacterial infection spread through contaminated food and water",
                      "a high fever, stomach pain and weakness",
                      "antibiotics and plenty of fluids"),
    "Sickle cell disease": ("an inherited disorder that makes red blood cells rigid",
                            "pain crises, anemia and frequent infections",
                            "pain relief, hydroxyurea, fluids and sometimes transfusions"),
    "Hepatitis B": ("a viral infection of the liver",
                    "tiredness, yellow skin and eyes, and dark urine",
                    "antiviral medicines; a vaccine prevents it"),
    "Measles": ("a highly contagious viral infection",
                "fever, cough, red eyes and a spreading rash",
                "rest, fluids and vitamin A; a vaccine prevents it"),
    "Osteoporosis": ("a disease that makes bones thin and fragile",
                     "often no symptoms until a bone breaks",
                     "calcium, vitamin D, exercise and bone-strengthening medicines"),
    "Dengue fever": ("a viral infection spread by Aedes mosquitoes",
                     "high fever, severe headache, pain behind the eyes and joint pain",
                     "rest, fluids and paracetamol; avoiding aspirin"),
    "Rabies": ("a deadly viral infection spread by the bite of an infected animal",
               "fever, tingling at the bite, confusion and fear of water",
               "washing the wound and vaccination straight after the bite"),
    "Schistosomiasis": ("a disease caused by parasitic worms in fresh water",
                        "rash, fever, abdominal pain and blood in urine or stool",
                        "the medicine praziquantel"),
    "Otitis media": ("an infection of the middle ear",
                     "ear pain, fever and trouble hearing",
                     "pain relief and sometimes antibiotics"),
    "Conjunctivitis": ("an inflammation of the clear layer over the eye",
                       "red, itchy, watery eyes",
                       "clean compresses, and antibiotic drops if bacterial"),
    "Eczema": ("a condition that makes the skin dry, itchy and inflamed",
               "itchy, red, cracked patches of skin",
               "moisturisers and steroid creams"),
    "Kidney stones": ("hard deposits of minerals that form inside the kidneys",
                      "severe pain in the side and back, and blood in urine",
                      "fluids, pain relief and sometimes procedures to break the stones"),
    "Gout": ("a form of arthritis caused by uric acid crystals in a joint",
             "sudden, severe pain and swelling, often in the big toe",
             "anti-inflammatory medicines and lowering uric acid"),
}
SOURCES = ["NIHSeniorHealth", "GARD", "MPlusHealthTopics", "CDC", "NIDDK"]


def medquad_rows() -> list[dict]:
    rows = []
    for i, (name, (what, symptoms, treatment)) in enumerate(CONDITIONS.items()):
        source = SOURCES[i % len(SOURCES)]
        rows += [
            {"question": f"What is (are) {name} ?", "answer": f"{name} is {what}.",
             "source": source, "focus_area": name},
            {"question": f"What are the symptoms of {name} ?",
             "answer": f"Common symptoms of {name} are {symptoms}.", "source": source,
             "focus_area": name},
            {"question": f"What are the treatments for {name} ?",
             "answer": f"{name} is treated with {treatment}.", "source": source,
             "focus_area": name},
        ]
    # What a real export holds too: a duplicate, blank answers, stray whitespace, and one
    # answer far longer than the recipe allows (the cleaning report counts each).
    rows.append(dict(rows[0]))
    rows.append({"question": "What is (are) Lupus ?", "answer": "", "source": "GARD",
                 "focus_area": "Lupus"})
    rows.append({"question": "   What are the symptoms of   Asthma ?  ",
                 "answer": "Common symptoms of Asthma are wheezing,  coughing, chest tightness "
                           "and shortness of breath.", "source": "CDC", "focus_area": "Asthma"})
    rows.append({"question": "What is (are) Polycystic kidney disease ?",
                 "answer": " ".join(["Polycystic kidney disease causes many cysts to grow in "
                                     "the kidneys."] * 120),
                 "source": "NIDDK", "focus_area": "Polycystic kidney disease"})
    return rows


AFRIMED_COLUMNS = ["sample_id", "split", "question_type", "prompt", "question", "answer_options",
                   "correct_answer", "answer_rationale", "specialty", "country"]
COUNTRIES = ["NG", "KE", "GH", "ZA", "UG", "RW"]


def afrimed_rows() -> list[dict]:
    rows = []
    advice = {
        "Malaria": "sleep under an insecticide-treated net and seek a malaria test for any fever",
        "Cholera": "drink only boiled or treated water and start oral rehydration salts early",
        "Typhoid fever": "wash hands, eat well-cooked food and see a clinician for antibiotics",
        "Sickle cell disease": "drink plenty of water, avoid extreme cold and treat infections early",
        "Hypertension": "reduce salt, stay active and check blood pressure regularly",
        "Anemia": "eat iron-rich foods such as beans and leafy greens and get a blood test",
        "Tuberculosis": "finish the full course of treatment even when the cough stops",
        "Measles": "make sure children receive both doses of the measles vaccine",
    }
    for i, (name, tip) in enumerate(advice.items()):
        country = COUNTRIES[i % len(COUNTRIES)]
        rows.append({"question_type": "consumer_queries",
                     "question": f"How can I protect my family from {name.lower()}?",
                     "answer_rationale": f"To protect against {name.lower()}, {tip}.",
                     "specialty": "Infectious Disease", "country": country})
        rows.append({"question_type": "saq",
                     "question": f"Name one key step in managing {name.lower()}.",
                     "answer_rationale": f"A key step is to {tip}.",
                     "specialty": "Family Medicine", "country": country})
    # Multiple-choice rows carry options rather than a free-text answer: the recipe skips them.
    for i, name in enumerate(list(CONDITIONS)[:6]):
        options = {f"option{k}": f"Choice {k}" for k in range(1, 5)}
        rows.append({"question_type": "mcq", "question": f"Which of these best describes {name}?",
                     "answer_options": json.dumps(options), "correct_answer": "option2",
                     "answer_rationale": "", "specialty": "Internal Medicine",
                     "country": COUNTRIES[i % len(COUNTRIES)]})
    for i, row in enumerate(rows):
        row.setdefault("answer_options", "")
        row.setdefault("correct_answer", "")
        row.update({"sample_id": f"sample-{i:04d}", "split": "train",
                    "prompt": row["question"]})
    return rows


# ----------------------------------------------------------------------------- SauDial

# English line -> (Najdi, Hijazi) renderings, as a player would hear them in a game.
LINES = {
    "Where are you going?": ("وين رايح؟", "فين رايح؟"),
    "What do you want?": ("وش تبي؟", "ايش تبغى؟"),
    "I want to buy a sword.": ("أبي أشتري سيف.", "أبغى أشتري سيف."),
    "How much is this?": ("بكم هذا؟", "بكم دا؟"),
    "What is this?": ("وش هذا؟", "ايش دا؟"),
    "Where is the market?": ("وين السوق؟", "فين السوق؟"),
    "Come here.": ("تعال هنا.", "تعال هنا."),
    "Hurry up!": ("عجّل!", "يلا بسرعة!"),
    "Let's go.": ("يلا نمشي.", "يلا نروح."),
    "I don't know.": ("ما أدري.", "ما أدري."),
    "Wait for me.": ("انتظرني.", "استناني."),
    "The enemy is coming!": ("العدو جاي!", "العدو جاي!"),
    "Open the gate.": ("افتح البوابة.", "افتح البوابة."),
    "I am tired.": ("أنا تعبان.", "أنا تعبان."),
    "Thank you very much.": ("مشكور ما قصرت.", "شكرًا مرة."),
    "Good morning, traveller.": ("صباح الخير يا مسافر.", "صباح الخير يا مسافر."),
    "Do you have water?": ("عندك موية؟", "عندك موية؟"),
    "I will come with you.": ("بجي معك.", "حاجي معاك."),
    "Be careful on the road.": ("انتبه في الطريق.", "خلي بالك في الطريق."),
    "What is your name?": ("وش اسمك؟", "ايش اسمك؟"),
    "I am looking for my brother.": ("أدور على أخوي.", "أدور على أخويا."),
    "Give me the key.": ("عطني المفتاح.", "اديني المفتاح."),
}
CONTEXTS = ["A merchant in the old market", "A guard at the city gate",
            "A companion during a desert quest", "An innkeeper welcoming a traveller"]


def saudial_rows(rng: random.Random) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, (english, (najdi, hijazi)) in enumerate(LINES.items()):
        for dialect, text in (("Najdi", najdi), ("Hijazi", hijazi)):
            for context in rng.sample(CONTEXTS, 2):
                rows.append([dialect, english, text, context])
        if i % 6 == 5:
            rows.append([None, None, None, None])  # blank separator rows, as kept by hand
    rows.append(["Najdi", "Follow me.", None, "A companion during a desert quest"])  # no answer
    rows.append(["Hijazi", None, "تعال معايا.", "A guard at the city gate"])  # no English
    return rows


def write_saudial(path: Path, rows: list[list[object]]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "SauDial"
    # Hand-kept sheets drift: odd spacing and case in headers, columns in another order.
    sheet.append(["english text ", "Dialect", "In-Game  Context", "Dialect Translation"])
    for dialect, english, translation, context in rows:
        sheet.append([english, dialect, context, translation])
    # Fixed timestamps, so regenerating the sample gives the same bytes.
    book.properties.created = book.properties.modified = datetime(2026, 1, 1)
    book.save(path)


# ------------------------------------------------------------------------------ InkubaLM

SENTIMENT = {
    "swa": ("Tambua hisia za matini ifuatayo. Jibu kwa Chanya, Wastani au Hasi.", {
        "Chanya": ["Ninafurahi sana leo.", "Chakula hiki ni kitamu sana.",
                   "Asante kwa msaada wako mzuri.", "Timu yetu imeshinda mechi.",
                   "Huduma ilikuwa nzuri sana.", "Napenda kitabu hiki."],
        "Wastani": ["Mkutano utafanyika kesho saa tatu.", "Duka linafunguliwa asubuhi.",
                    "Basi linaondoka saa nne.", "Leo ni Jumatatu.",
                    "Mji uko karibu na bahari.", "Tutakutana sokoni."],
        "Hasi": ["Nimechoka na huduma mbaya.", "Mvua imeharibu mazao yetu.",
                 "Sipendi kelele hizi.", "Safari ilikuwa mbaya sana.",
                 "Bei ya chakula imepanda sana.", "Simu yangu imeibiwa."]}),
    "hau": ("Gano ra'ayin rubutun nan. Amsa da Kyakkyawa, Tsaka-tsaki ko Korau.", {
        "Kyakkyawa": ["Ina farin ciki sosai yau.", "Abincin nan yana da daɗi.",
                      "Na gode da taimakonka.", "Ƙungiyarmu ta yi nasara.",
                      "Wannan littafi yana da kyau.", "Aikin ya tafi lafiya."],
        "Tsaka-tsaki": ["Taron zai kasance gobe.", "Kasuwa tana buɗe da safe.",
                        "Motar za ta tashi ƙarfe huɗu.", "Yau ranar Litinin ce.",
                        "Garin yana kusa da kogi.", "Za mu haɗu a kasuwa."],
        "Korau": ["Ban ji daɗin wannan ba.", "Ruwan sama ya lalata amfanin gona.",
                  "Farashin abinci ya yi tsada sosai.", "An sace wayata.",
                  "Hanyar tana da muni.", "Na gaji da wannan matsala."]}),
}
# premise, then hypotheses labelled 0 (entailment), 1 (neutral), 2 (contradiction)
XNLI = {
    "swa": [("Mtoto anacheza mpira uwanjani.",
             ["Mtoto yuko nje.", "Mtoto anapenda shule.", "Mtoto amelala kitandani."]),
            ("Mama anapika chakula jikoni.",
             ["Mama yuko jikoni.", "Mama anapika wali.", "Mama yuko sokoni."]),
            ("Wakulima wanavuna mahindi.",
             ["Wakulima wako shambani.", "Mahindi yatauzwa kesho.", "Wakulima wamelala."]),
            ("Mwalimu anafundisha darasani.",
             ["Kuna mwalimu darasani.", "Wanafunzi ni thelathini.", "Darasa ni tupu."])],
    "hau": [("Yaro yana wasan ƙwallo a filin.",
             ["Yaro yana waje.", "Yaro yana son makaranta.", "Yaro yana barci a gado."]),
            ("Uwa tana dafa abinci a kicin.",
             ["Uwa tana kicin.", "Uwa tana dafa shinkafa.", "Uwa tana kasuwa."]),
            ("Manoma suna girbin masara.",
             ["Manoma suna gona.", "Za a sayar da masara gobe.", "Manoma suna barci."]),
            ("Malami yana koyarwa a aji.",
             ["Akwai malami a aji.", "Ɗalibai talatin ne.", "Ajin babu kowa."])],
}
MT = [("Good morning.", "Habari za asubuhi.", "Barka da safiya."),
      ("Thank you very much.", "Asante sana.", "Na gode sosai."),
      ("Where is the market?", "Soko liko wapi?", "Ina kasuwa take?"),
      ("I am going home.", "Ninaenda nyumbani.", "Zan tafi gida."),
      ("The water is clean.", "Maji ni safi.", "Ruwan yana da tsabta."),
      ("My name is Amina.", "Jina langu ni Amina.", "Sunana Amina."),
      ("The children are playing.", "Watoto wanacheza.", "Yara suna wasa."),
      ("Please help me.", "Tafadhali nisaidie.", "Don Allah ka taimake ni."),
      ("The food is ready.", "Chakula kiko tayari.", "Abinci ya yi."),
      ("It is raining today.", "Leo mvua inanyesha.", "Ana ruwan sama yau."),
      ("We will meet tomorrow.", "Tutaonana kesho.", "Za mu haɗu gobe."),
      ("How much is this?", "Hii ni bei gani?", "Nawa ne wannan?")]
INKUBA_COLUMNS = ["ID", "task", "langs", "data_source", "instruction", "inputs", "targets"]


def inkuba_rows() -> dict[str, list[dict]]:
    """Three files, as the challenge ships them: sentiment, AfriXNLI, and English->X MT."""
    files: dict[str, list[dict]] = {"sentiment": [], "xnli": [], "mt": []}
    for lang, (instruction, labelled) in SENTIMENT.items():
        for label, sentences in labelled.items():
            for text in sentences:
                files["sentiment"].append({"task": "sentiment", "langs": lang,
                                           "instruction": instruction, "inputs": text,
                                           "targets": label})
    for lang, items in XNLI.items():
        for premise, hypotheses in items:
            for label, hypothesis in enumerate(hypotheses):
                files["xnli"].append({
                    "task": "xnli", "langs": lang,
                    "instruction": "Is the following question True, False or Neither?",
                    "inputs": f"{premise} Question: {hypothesis} True, False or Neither?",
                    "targets": str(label)})
    for english, swahili, hausa in MT:
        for lang, target, name in (("eng-swa", swahili, "Swahili"), ("eng-hau", hausa, "Hausa")):
            files["mt"].append({"task": "mmt", "langs": lang,
                                "instruction": f"Translate this English text to {name}.",
                                "inputs": english, "targets": target})
    for task, rows in files.items():
        for i, row in enumerate(rows):
            row["ID"] = f"ID_{task}_{i:04d}"
            row["data_source"] = "slothlab-sample"
    return files


def write_csv(path: Path, rows: list[dict], columns: list[str], *, crlf: bool = False) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\r\n" if crlf else "\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(20261121)
    with open(DATA / "finetome_sample.jsonl", "w", encoding="utf-8") as fh:
        for row in finetome_rows(rng):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_csv(DATA / "medquad_sample.csv", medquad_rows(),
              ["question", "answer", "source", "focus_area"])
    write_csv(DATA / "afrimedqa_sample.csv", afrimed_rows(), AFRIMED_COLUMNS, crlf=True)
    write_saudial(DATA / "saudial_sample.xlsx", saudial_rows(rng))
    for task, rows in inkuba_rows().items():
        write_csv(DATA / f"inkuba_{task}_sample.csv", rows, INKUBA_COLUMNS)
        print(f"wrote {DATA / f'inkuba_{task}_sample.csv'}")
    for name in ("finetome_sample.jsonl", "medquad_sample.csv", "afrimedqa_sample.csv",
                 "saudial_sample.xlsx"):
        print(f"wrote {DATA / name}")


if __name__ == "__main__":
    main()
