"""Generate the built-in demo pool, ``demo_pool.jsonl`` (deterministic).

About 300 Alpaca records (``id``, ``topic``, ``instruction``, ``input``, ``output``,
``issue``) on everyday topics. Computed answers (arithmetic, unit conversions, dates,
number lists, word transformations) come from the code below; the rest are written out
here. About 10% are deliberately broken and flagged in ``issue``:

- ``mismatched``: the answer belongs to another question;
- ``truncated``: the answer is cut off mid-sentence;
- ``empty``: a near-empty answer such as ``"."``, ``"N/A"`` or ``"..."``.

Clean records have ``issue: ""``. Run ``python -m winnow.data.demo.make_demo_pool``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

SEED = 2024
N_BROKEN = {"mismatched": 10, "truncated": 10, "empty": 10}
EMPTY_ANSWERS = [".", "N/A", "...", "-", "?", "n/a", "TBD", "none", ".", "…"]
OUT = Path(__file__).resolve().parent / "demo_pool.jsonl"


def num(x: float) -> str:
    """A number as people write it: no trailing .0, at most two decimals."""
    x = round(x, 2)
    return str(int(x)) if x == int(x) else f"{x:.2f}".rstrip("0")


def equals(x: float) -> str:
    """``= x`` when ``num`` shows x exactly, else ``≈ x``."""
    return f"{'=' if round(x, 2) == x else '≈'} {num(x)}"


def arithmetic(rng: random.Random) -> list[tuple]:
    items = []
    for _ in range(12):
        a, b = rng.randint(12, 999), rng.randint(12, 999)
        items.append((f"What is {a} + {b}?", "", f"{a} + {b} = {a + b}."))
    for _ in range(10):
        a, b = sorted((rng.randint(10, 999), rng.randint(10, 999)), reverse=True)
        items.append((f"Subtract {b} from {a}.", "", f"{a} - {b} = {a - b}."))
    for _ in range(10):
        a, b = rng.randint(3, 99), rng.randint(3, 40)
        items.append((f"Calculate {a} × {b}.", "", f"{a} × {b} = {a * b}."))
    for _ in range(8):
        b, q = rng.randint(2, 25), rng.randint(2, 60)
        items.append((f"What is {b * q} divided by {b}?", "", f"{b * q} ÷ {b} = {q}."))
    for _ in range(6):
        p, n = rng.choice([5, 10, 20, 25, 50, 75]), rng.randint(1, 40) * 20
        items.append((f"What is {p}% of {n}?", "",
                      f"{p}% of {n} is {num(p * n / 100)}, because {n} × {p}/100 = "
                      f"{num(p * n / 100)}."))
    for _ in range(4):
        r = rng.randint(4, 30)
        items.append((f"What is the square root of {r * r}?", "",
                      f"The square root of {r * r} is {r}, since {r} × {r} = {r * r}."))
    return [("arithmetic", *t) for t in items]


def word_problems(rng: random.Random) -> list[tuple]:
    items = []
    price, n = rng.randint(3, 20), rng.randint(2, 9)
    items.append((f"A notebook costs ${price}. How much do {n} notebooks cost?", "",
                  f"{n} notebooks cost {n} × ${price} = ${n * price}."))
    speed, hours = rng.choice([40, 60, 80, 90, 120]), rng.randint(2, 6)
    items.append((f"A train travels at {speed} km/h for {hours} hours. How far does it go?", "",
                  f"Distance = speed × time = {speed} km/h × {hours} h = {speed * hours} km."))
    have, give = rng.randint(15, 40), rng.randint(2, 14)
    items.append((f"Maria has {have} apples and gives {give} to her friend. How many apples "
                  "does she have left?", "", f"She has {have} - {give} = {have - give} apples "
                  "left."))
    grams, cakes = rng.choice([150, 200, 250, 300]), rng.randint(2, 6)
    items.append((f"A cake needs {grams} g of flour. How much flour is needed for {cakes} "
                  "cakes?", "", f"{cakes} × {grams} g = {cakes * grams} g of flour "
                  f"({num(cakes * grams / 1000)} kg)."))
    ticket, money = rng.randint(6, 15), rng.randint(50, 120)
    items.append((f"Tickets cost ${ticket} each. How many tickets can you buy with ${money}?",
                  "", f"{money} ÷ {ticket} = {money // ticket} remainder {money % ticket}, so "
                  f"you can buy {money // ticket} tickets and have ${money % ticket} left."))
    w, h = rng.randint(3, 15), rng.randint(3, 15)
    items.append((f"What is the area of a rectangle that is {w} m wide and {h} m long?", "",
                  f"Area = width × length = {w} m × {h} m = {w * h} m²."))
    side = rng.randint(3, 20)
    items.append((f"What is the perimeter of a square with sides of {side} cm?", "",
                  f"Perimeter = 4 × side = 4 × {side} cm = {4 * side} cm."))
    start, mins = rng.randint(7, 10), rng.choice([35, 45, 50, 75, 90, 110])
    end = dt.datetime(2024, 1, 1, start) + dt.timedelta(minutes=mins)
    items.append((f"A meeting starts at {start}:00 and lasts {mins} minutes. When does it end?",
                  "", f"It ends at {end.hour}:{end.minute:02d} ({start}:00 plus {mins} minutes)."))
    a, b, c = rng.randint(60, 100), rng.randint(60, 100), rng.randint(60, 100)
    items.append(("What is the average of these test scores?", f"{a}, {b}, {c}",
                  f"The average is ({a} + {b} + {c}) ÷ 3 = {a + b + c} ÷ 3 "
                  f"{equals((a + b + c) / 3)}."))
    pages, per_day = rng.randint(120, 400), rng.choice([10, 20, 25, 30, 40])
    days = -(-pages // per_day)
    items.append((f"If you read {per_day} pages a day, how many days does it take to finish a "
                  f"{pages}-page book?", "", f"{pages} ÷ {per_day} {equals(pages / per_day)}, so "
                  f"it takes {days} days (the last day is a partial one)."
                  if pages % per_day else f"{pages} ÷ {per_day} = {days}, so it takes {days} "
                  "days."))
    return [("word problems", *t) for t in items]


def conversions(rng: random.Random) -> list[tuple]:
    items = []
    for _ in range(4):
        km = rng.randint(2, 200)
        items.append((f"Convert {km} kilometres to miles.", "",
                      f"{km} km is about {num(km / 1.609344)} miles (1 mile = 1.609344 km)."))
    for _ in range(4):
        mi = rng.randint(2, 100)
        items.append((f"How many kilometres are in {mi} miles?", "",
                      f"{mi} miles is about {num(mi * 1.609344)} km (1 mile = 1.609344 km)."))
    for _ in range(3):
        kg = rng.randint(2, 120)
        items.append((f"Convert {kg} kg to pounds.", "",
                      f"{kg} kg is about {num(kg / 0.45359237)} lb (1 lb = 0.45359237 kg)."))
    for _ in range(3):
        lb = rng.randint(2, 250)
        items.append((f"How many kilograms is {lb} pounds?", "",
                      f"{lb} lb is about {num(lb * 0.45359237)} kg (1 lb = 0.45359237 kg)."))
    for _ in range(4):
        c = rng.randrange(-20, 105, 5)
        items.append((f"Convert {c} °C to Fahrenheit.", "",
                      f"{c} °C = {c} × 9/5 + 32 = {num(c * 9 / 5 + 32)} °F."))
    for _ in range(3):
        f = rng.randrange(-4, 213, 9)
        items.append((f"Convert {f} °F to Celsius.", "",
                      f"{f} °F = ({f} - 32) × 5/9 = {num((f - 32) * 5 / 9)} °C."))
    for _ in range(3):
        h = rng.randint(2, 48)
        items.append((f"How many minutes are in {h} hours?", "",
                      f"{h} hours = {h} × 60 = {h * 60} minutes."))
    for _ in range(2):
        d = rng.randint(2, 30)
        items.append((f"How many hours are in {d} days?", "",
                      f"{d} days = {d} × 24 = {d * 24} hours."))
    for _ in range(3):
        cm = rng.randint(5, 300)
        items.append((f"Convert {cm} cm to inches.", "",
                      f"{cm} cm is about {num(cm / 2.54)} inches (1 inch = 2.54 cm)."))
    for _ in range(2):
        inch = rng.randint(2, 80)
        items.append((f"How many centimetres is {inch} inches?", "",
                      f"{inch} inches = {inch} × 2.54 = {num(inch * 2.54)} cm."))
    for _ in range(3):
        litres = rng.choice([0.25, 0.5, 1.5, 2, 3.75, 5])
        items.append((f"How many millilitres are in {num(litres)} litres?", "",
                      f"{num(litres)} L = {num(litres)} × 1000 = {num(litres * 1000)} mL."))
    for _ in range(2):
        m = rng.randint(2, 50) * 100
        items.append((f"Convert {m} metres to kilometres.", "",
                      f"{m} m = {m} ÷ 1000 = {num(m / 1000)} km."))
    return [("unit conversions", *t) for t in items]


CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"),
    ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Brazil", "Brasília"),
    ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Nigeria", "Abuja"), ("Russia", "Moscow"), ("Turkey", "Ankara"),
    ("Greece", "Athens"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
    ("Poland", "Warsaw"), ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Peru", "Lima"),
    ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("New Zealand", "Wellington"),
    ("Hungary", "Budapest"),
]


def capitals(rng: random.Random) -> list[tuple]:
    templates = ["What is the capital of {c}?", "Name the capital city of {c}.",
                 "Which city is the capital of {c}?"]
    return [("capitals", rng.choice(templates).format(c=c), "", f"The capital of {c} is {cap}.")
            for c, cap in CAPITALS]


ELEMENTS = [("gold", "Au"), ("silver", "Ag"), ("iron", "Fe"), ("sodium", "Na"),
            ("potassium", "K"), ("lead", "Pb"), ("copper", "Cu"), ("tin", "Sn"),
            ("mercury", "Hg"), ("helium", "He"), ("calcium", "Ca"), ("zinc", "Zn")]
ANTONYMS = [("hot", "cold"), ("ancient", "modern"), ("generous", "stingy"),
            ("increase", "decrease"), ("accept", "reject"), ("victory", "defeat"),
            ("early", "late"), ("expand", "contract"), ("rare", "common"), ("brave", "cowardly")]
PLURALS = [("child", "children"), ("mouse", "mice"), ("tooth", "teeth"), ("woman", "women"),
           ("sheep", "sheep"), ("criterion", "criteria"), ("leaf", "leaves"),
           ("person", "people"), ("goose", "geese"), ("analysis", "analyses")]


def words(rng: random.Random) -> list[tuple]:
    items = [("science", f"What is the chemical symbol for {name}?", "",
              f"The chemical symbol for {name} is {sym}.") for name, sym in ELEMENTS]
    items += [("language", f"Give an antonym of the word \"{w}\".", "",
               f"An antonym of \"{w}\" is \"{a}\".") for w, a in ANTONYMS]
    items += [("language", f"What is the plural of \"{w}\"?", "",
               f"The plural of \"{w}\" is \"{p}\".") for w, p in PLURALS]
    return items


def dates(rng: random.Random) -> list[tuple]:
    items = []
    for _ in range(5):
        day = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000))
        items.append((f"What day of the week was {day:%B} {day.day}, {day.year}?", "",
                      f"{day:%B} {day.day}, {day.year} was a {day:%A}."))
    for year in rng.sample([1900, 1996, 2000, 2023, 2024, 2100, 1800, 2012], 4):
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        why = ("it is divisible by 400" if year % 400 == 0 else
               "it is divisible by 100 but not by 400" if year % 100 == 0 else
               "it is divisible by 4 and not by 100" if year % 4 == 0 else
               "it is not divisible by 4")
        items.append((f"Is {year} a leap year?", "",
                      f"{'Yes' if leap else 'No'}, {year} is {'' if leap else 'not '}a leap "
                      f"year because {why}."))
    a = dt.date(2024, rng.randint(1, 6), rng.randint(1, 28))
    b = a + dt.timedelta(days=rng.randint(20, 200))
    items.append(("How many days are there between these two dates?",
                  f"{a:%B} {a.day}, {a.year} and {b:%B} {b.day}, {b.year}",
                  f"There are {(b - a).days} days from {a:%B} {a.day} to {b:%B} {b.day}, "
                  f"{b.year}."))
    return [("dates", *t) for t in items]


def primes(n: int) -> list[int]:
    out, k = [], 2
    while len(out) < n:
        if all(k % p for p in out if p * p <= k):
            out.append(k)
        k += 1
    return out


def number_lists(rng: random.Random) -> list[tuple]:
    n = rng.randint(6, 12)
    fib = [0, 1]
    while len(fib) < n:
        fib.append(fib[-1] + fib[-2])
    k, m = rng.randint(3, 9), rng.randint(5, 10)
    lo = rng.randint(1, 30)
    items = [
        (f"List the first {n} prime numbers.", "", ", ".join(map(str, primes(n))) + "."),
        (f"List the first {m} multiples of {k}.", "",
         ", ".join(str(k * i) for i in range(1, m + 1)) + "."),
        (f"List the even numbers between {lo} and {lo + 15}.", "",
         ", ".join(str(i) for i in range(lo + 1, lo + 15) if i % 2 == 0) + "."),
        (f"Write the first {n} square numbers.", "",
         ", ".join(str(i * i) for i in range(1, n + 1)) + "."),
        (f"Write the first {n} numbers of the Fibonacci sequence, starting from 0.", "",
         ", ".join(map(str, fib)) + "."),
    ]
    return [("lists", *t) for t in items]


FIXED_LISTS = [
    ("Name the planets of the solar system in order from the Sun.",
     "Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune."),
    ("List the seven continents.",
     "Africa, Antarctica, Asia, Australia (Oceania), Europe, North America and South America."),
    ("What are the colours of the rainbow, in order?",
     "Red, orange, yellow, green, blue, indigo and violet."),
    ("List the days of the week, starting with Monday.",
     "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday."),
    ("Name the world's five oceans.",
     "The Pacific, Atlantic, Indian, Southern and Arctic Oceans."),
    ("List the noble gases.",
     "Helium, neon, argon, krypton, xenon and radon (and the synthetic oganesson)."),
    ("What are the three primary colours of light?", "Red, green and blue."),
    ("List the months of the year that have 31 days.",
     "January, March, May, July, August, October and December."),
    ("Name the five vowels of the English alphabet.", "A, E, I, O and U."),
    ("List four common states of matter.", "Solid, liquid, gas and plasma."),
    ("Give three examples of renewable energy sources.",
     "Solar power, wind power and hydroelectric power."),
    ("List the ingredients of a basic pancake batter.",
     "Flour, milk, eggs, a pinch of salt and a little melted butter or oil."),
]


SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "winter evenings are perfect for reading long novels",
    "our neighbours planted tomatoes and sunflowers this spring",
    "please remember to water the plants every evening",
    "a good map makes every journey easier",
    "the library opens at nine and closes at six",
]


def transforms(rng: random.Random) -> list[tuple]:
    items = []
    for s in SENTENCES:
        op = rng.choice(["upper", "reverse", "sort", "count", "capitalise"])
        if op == "upper":
            items.append(("Convert the following text to uppercase.", s, s.upper()))
        elif op == "reverse":
            items.append(("Reverse the order of the words in this sentence.", s,
                          " ".join(reversed(s.split()))))
        elif op == "sort":
            items.append(("Sort the words of this sentence in alphabetical order.", s,
                          " ".join(sorted(s.split()))))
        elif op == "count":
            items.append(("How many words are in this sentence?", s,
                          f"The sentence has {len(s.split())} words."))
        else:
            items.append(("Capitalise the first letter of every word in this sentence.", s,
                          " ".join(w.capitalize() for w in s.split())))
    nums = rng.sample(range(1, 100), 7)
    items.append(("Sort these numbers from smallest to largest.", ", ".join(map(str, nums)),
                  ", ".join(map(str, sorted(nums)))))
    items.append(("Find the largest number in this list.", ", ".join(map(str, nums)),
                  f"The largest number is {max(nums)}."))
    word = rng.choice(["window", "garden", "planet", "orange", "bridge"])
    items.append(("Spell this word backwards.", word, word[::-1]))
    return [("text transforms", *t) for t in items]


REWRITES = [
    ("Rewrite the sentence in the passive voice.", "The chef cooked a delicious meal.",
     "A delicious meal was cooked by the chef."),
    ("Rewrite the sentence in the passive voice.", "The committee approved the new budget.",
     "The new budget was approved by the committee."),
    ("Rewrite this sentence in a more formal tone.", "Hey, can you send me that report ASAP?",
     "Could you please send me the report at your earliest convenience?"),
    ("Correct the grammar in this sentence.", "She don't like going to the gym on mondays.",
     "She doesn't like going to the gym on Mondays."),
    ("Correct the grammar in this sentence.", "Me and him was late for the meeting.",
     "He and I were late for the meeting."),
    ("Rewrite the sentence in the past tense.", "They walk to school every morning.",
     "They walked to school every morning."),
    ("Rewrite the sentence in the future tense.", "I finish my homework before dinner.",
     "I will finish my homework before dinner."),
    ("Make this sentence more concise.",
     "In spite of the fact that it was raining, we made the decision to go for a walk.",
     "Although it was raining, we decided to go for a walk."),
    ("Combine these two sentences into one.", "The museum is old. It is very popular.",
     "The museum is old but very popular."),
    ("Turn this statement into a question.", "The train leaves at eight o'clock.",
     "Does the train leave at eight o'clock?"),
    ("Translate this sentence into French.", "Good morning, how are you?",
     "Bonjour, comment allez-vous ?"),
    ("Translate this sentence into Spanish.", "Where is the train station?",
     "¿Dónde está la estación de tren?"),
]


DEFINITIONS = [
    ("photosynthesis", "Photosynthesis is the process by which green plants, algae and some "
     "bacteria use sunlight, water and carbon dioxide to make glucose, releasing oxygen as a "
     "by-product."),
    ("an algorithm", "An algorithm is a finite sequence of well-defined steps for solving a "
     "problem or carrying out a task, such as a recipe for sorting a list of numbers."),
    ("inflation", "Inflation is the general rise in the prices of goods and services over "
     "time, which means that each unit of money buys less than it did before."),
    ("a metaphor", "A metaphor is a figure of speech that describes something by saying it is "
     "something else, as in \"time is a thief\", without using \"like\" or \"as\"."),
    ("gravity", "Gravity is the force by which objects with mass attract one another; on "
     "Earth it gives things weight and makes them fall towards the ground."),
    ("an ecosystem", "An ecosystem is a community of living organisms together with their "
     "physical environment, interacting as a system, such as a forest or a coral reef."),
    ("democracy", "Democracy is a system of government in which power rests with the people, "
     "who rule either directly or through representatives they elect."),
    ("a noun", "A noun is a word that names a person, place, thing or idea, such as "
     "\"teacher\", \"city\", \"book\" or \"freedom\"."),
    ("a verb", "A verb is a word that describes an action, state or occurrence, such as "
     "\"run\", \"be\" or \"happen\"."),
    ("evaporation", "Evaporation is the process in which a liquid turns into a gas at its "
     "surface, for example when water in a puddle dries up in the sun."),
    ("a prime number", "A prime number is a whole number greater than 1 whose only divisors "
     "are 1 and itself, such as 2, 3, 5, 7 and 11."),
    ("an atom", "An atom is the smallest unit of a chemical element, made of a nucleus of "
     "protons and neutrons surrounded by electrons."),
    ("a budget", "A budget is a plan that estimates income and expenses over a period of "
     "time, used to decide how money will be spent and saved."),
    ("compound interest", "Compound interest is interest calculated on both the original sum "
     "and the interest already added to it, so savings or debts grow faster over time."),
    ("a haiku", "A haiku is a short Japanese poetic form of three lines with five, seven and "
     "five syllables, often about nature or a season."),
    ("biodiversity", "Biodiversity is the variety of life in a particular place or on Earth as "
     "a whole, including the diversity of species, genes and ecosystems."),
    ("a variable in programming", "A variable is a named storage location in a program that "
     "holds a value, which can be read and changed while the program runs."),
    ("the water cycle", "The water cycle is the continuous movement of water on Earth through "
     "evaporation, condensation into clouds, precipitation and collection in rivers, lakes "
     "and oceans."),
    ("a peninsula", "A peninsula is a piece of land almost entirely surrounded by water but "
     "connected to the mainland on one side, such as Italy or Florida."),
    ("an adjective", "An adjective is a word that describes or modifies a noun, such as "
     "\"blue\", \"tall\" or \"happy\"."),
    ("osmosis", "Osmosis is the movement of water through a semi-permeable membrane from a "
     "region of lower solute concentration to a region of higher solute concentration."),
    ("a mammal", "A mammal is a warm-blooded vertebrate animal that has hair or fur and feeds "
     "its young with milk, such as a dog, a whale or a human."),
    ("supply and demand", "Supply and demand is the economic model in which the price of a "
     "good settles where the quantity sellers offer equals the quantity buyers want."),
    ("a synonym", "A synonym is a word that means the same or nearly the same as another "
     "word, such as \"big\" and \"large\"."),
    ("a fraction", "A fraction represents a part of a whole as one number over another, such "
     "as 3/4, where the bottom number says how many equal parts make the whole."),
    ("erosion", "Erosion is the gradual wearing away of rock and soil by wind, water or ice, "
     "which then carry the material to other places."),
    ("a password manager", "A password manager is an application that stores your passwords "
     "in an encrypted vault and can generate strong, unique passwords for each account."),
    ("recycling", "Recycling is the process of collecting used materials such as paper, glass "
     "and plastic and turning them into new products instead of throwing them away."),
]


HOWTOS = [
    ("How do I boil an egg?", "Place the egg in a pan and cover it with cold water. Bring the "
     "water to a boil, then lower the heat and simmer for about 6 minutes for a soft yolk or "
     "9 to 10 minutes for a hard yolk. Move the egg into cold water to stop the cooking before "
     "peeling it."),
    ("How can I make a cup of tea?", "Boil fresh water and pour it over a tea bag or loose "
     "leaves in a cup or teapot. Let it steep for 3 to 5 minutes, then remove the tea. Add "
     "milk, sugar or lemon if you like."),
    ("Explain how to change a flat bicycle tyre.", "Remove the wheel from the bike and let out "
     "any remaining air. Use tyre levers to pull one side of the tyre off the rim and take out "
     "the inner tube. Find the puncture, patch it or use a new tube, put the tube back inside "
     "the tyre, push the tyre onto the rim, inflate it to the pressure printed on the tyre and "
     "refit the wheel."),
    ("How do I plant a tree?", "Dig a hole about twice as wide as the root ball and as deep as "
     "it is tall. Loosen the roots, set the tree in the hole so the top of the root ball is "
     "level with the ground, fill the hole with soil and press it down gently. Water it "
     "deeply and keep the soil moist for the first few weeks."),
    ("Give me tips for getting a good night's sleep.", "Go to bed and wake up at the same time "
     "every day. Keep your bedroom dark, quiet and cool, avoid caffeine in the afternoon and "
     "put screens away an hour before bed. Regular exercise during the day also helps you "
     "fall asleep more easily."),
    ("How do I write a good cover letter?", "Address it to a named person if you can and "
     "state the job you are applying for in the first paragraph. Explain briefly why you want "
     "the role and give two or three concrete examples of how your experience fits it. Close "
     "by thanking the reader and saying you would welcome an interview, and keep the whole "
     "letter to one page."),
    ("How can I save money on groceries?", "Plan your meals for the week and shop with a "
     "list. Compare unit prices, buy store brands and seasonal produce, and avoid shopping "
     "when you are hungry. Cooking in batches and using leftovers also reduces waste."),
    ("How do I remove a coffee stain from a shirt?", "Blot the stain with a clean cloth as soon "
     "as possible and rinse it from the back with cold water. Rub a little liquid laundry "
     "detergent into the stain, leave it for a few minutes, then wash the shirt as usual and "
     "check that the stain is gone before drying it."),
    ("How do I create a strong password?", "Use a long passphrase of at least 12 to 16 "
     "characters, for example several unrelated words, and add numbers or symbols. Do not "
     "reuse it on other sites, avoid personal details such as birthdays, and store it in a "
     "password manager."),
    ("How should I prepare for a job interview?", "Research the company and the role, and "
     "prepare short examples of your achievements that match the job description. Practise "
     "answering common questions aloud, prepare a few questions of your own, and plan your "
     "route so that you arrive ten minutes early."),
    ("How do I make a simple tomato sauce?", "Gently fry a chopped onion and two cloves of "
     "garlic in olive oil until soft. Add a tin of chopped tomatoes, a pinch of salt and some "
     "basil or oregano, then simmer for about 20 minutes, stirring now and then, until the "
     "sauce thickens."),
    ("Explain how to take a screenshot on a Windows computer.", "Press the Windows key, Shift "
     "and S together to open the snipping tool, then drag to select the area you want; the "
     "image is copied to the clipboard. Alternatively, press the Print Screen key to copy the "
     "whole screen."),
    ("How do I care for a houseplant?", "Place it where it gets the right amount of light for "
     "its species and water it when the top few centimetres of soil feel dry. Make sure the "
     "pot has drainage holes, feed it during the growing season and wipe dust off the "
     "leaves."),
    ("How do I calculate a 15% tip?", "Find 10% of the bill by moving the decimal point one "
     "place to the left, then add half of that amount. For a bill of $40, 10% is $4 and half "
     "of that is $2, so the tip is $6."),
    ("How can I improve my public speaking?", "Know your material well and practise out loud "
     "several times, ideally in front of a friend or a camera. Speak slowly, pause between "
     "points and make eye contact with your audience. Start with small groups and build up "
     "your confidence step by step."),
]


FACTS = [
    ("At what temperature does water boil at sea level?",
     "At sea level, water boils at 100 °C (212 °F)."),
    ("How many bones are in the adult human body?", "An adult human body has 206 bones."),
    ("What is the largest planet in our solar system?",
     "Jupiter is the largest planet in our solar system."),
    ("What gas do plants absorb from the air?",
     "Plants absorb carbon dioxide (CO₂) from the air and use it in photosynthesis."),
    ("How long does it take the Earth to orbit the Sun?",
     "The Earth takes about 365.25 days, one year, to orbit the Sun."),
    ("What is the speed of light in a vacuum?",
     "The speed of light in a vacuum is 299,792,458 metres per second, about 300,000 km/s."),
    ("Who wrote \"Romeo and Juliet\"?",
     "\"Romeo and Juliet\" was written by William Shakespeare."),
    ("What is the longest river in South America?",
     "The Amazon is the longest river in South America."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("What is the freezing point of water in Fahrenheit?",
     "Water freezes at 32 °F (0 °C)."),
    ("Which organ pumps blood around the human body?",
     "The heart pumps blood around the human body."),
    ("What is the tallest mountain on Earth above sea level?",
     "Mount Everest, at 8,849 metres above sea level, is the tallest mountain on Earth."),
    ("How many minutes are there in a day?", "There are 24 × 60 = 1,440 minutes in a day."),
    ("What is the hardest natural substance?", "Diamond is the hardest natural substance."),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("How many players are on a football (soccer) team on the field?",
     "Each team has eleven players on the field, including the goalkeeper."),
]


CODE = [
    ("Write a Python function that reverses a string.", "",
     "def reverse_string(s: str) -> str:\n    return s[::-1]"),
    ("Write a Python function that returns the factorial of n.", "",
     "def factorial(n: int) -> int:\n    result = 1\n    for k in range(2, n + 1):\n"
     "        result *= k\n    return result"),
    ("Write a Python function that checks whether a number is even.", "",
     "def is_even(n: int) -> bool:\n    return n % 2 == 0"),
    ("Write a Python function that returns the largest number in a list.", "",
     "def largest(numbers: list[float]) -> float:\n    return max(numbers)"),
    ("Write a Python program that prints the numbers from 1 to 15, printing \"Fizz\" for "
     "multiples of 3, \"Buzz\" for multiples of 5 and \"FizzBuzz\" for multiples of both.", "",
     "for i in range(1, 16):\n    if i % 15 == 0:\n        print(\"FizzBuzz\")\n"
     "    elif i % 3 == 0:\n        print(\"Fizz\")\n    elif i % 5 == 0:\n"
     "        print(\"Buzz\")\n    else:\n        print(i)"),
    ("Write a Python function that counts the vowels in a string.", "",
     "def count_vowels(text: str) -> int:\n    return sum(1 for ch in text.lower() if ch in "
     "\"aeiou\")"),
    ("Write a Python function that checks whether a word is a palindrome.", "",
     "def is_palindrome(word: str) -> bool:\n    w = word.lower()\n    return w == w[::-1]"),
    ("Write a Python function that reads a text file and returns its number of lines.", "",
     "def count_lines(path: str) -> int:\n    with open(path, encoding=\"utf-8\") as f:\n"
     "        return sum(1 for _ in f)"),
    ("Write a Python function that removes duplicates from a list while keeping the order.",
     "", "def unique(items: list) -> list:\n    return list(dict.fromkeys(items))"),
    ("Write a Python function that converts Celsius to Fahrenheit.", "",
     "def celsius_to_fahrenheit(c: float) -> float:\n    return c * 9 / 5 + 32"),
    ("Write a SQL query that selects all customers from the city of London.",
     "Table: customers(id, name, city)",
     "SELECT * FROM customers WHERE city = 'London';"),
    ("Write a SQL query that counts the orders of each customer.",
     "Table: orders(id, customer_id, total)",
     "SELECT customer_id, COUNT(*) AS n_orders\nFROM orders\nGROUP BY customer_id;"),
    ("Write a JavaScript function that adds two numbers.", "",
     "function add(a, b) {\n  return a + b;\n}"),
    ("Write a JavaScript arrow function that returns the square of a number.", "",
     "const square = (x) => x * x;"),
    ("What does this Python code print?", "print(sum(range(5)))",
     "It prints 10, because range(5) yields 0, 1, 2, 3 and 4, whose sum is 10."),
    ("What does this Python code print?", "print(len(\"hello world\"))",
     "It prints 11: the string has ten letters and one space."),
    ("Fix the bug in this Python function.",
     "def average(xs):\n    return sum(xs) / len(x)",
     "The function uses the undefined name `x`; it should be `xs`:\n\n"
     "def average(xs):\n    return sum(xs) / len(xs)"),
    ("Write a shell command that lists all files in the current folder, including hidden "
     "ones.", "", "ls -a"),
    ("Write a Python list comprehension that gives the squares of 1 to 10.", "",
     "squares = [n * n for n in range(1, 11)]"),
    ("Write a Python function that returns the n-th Fibonacci number (F(0) = 0).", "",
     "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
     "        a, b = b, a + b\n    return a"),
]


def clean_items(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(topic, instruction, input, output) of every correct record."""
    items = arithmetic(rng) + word_problems(rng) + conversions(rng) + capitals(rng)
    items += words(rng) + dates(rng) + number_lists(rng) + transforms(rng)
    items += [("lists", q, "", a) for q, a in FIXED_LISTS]
    items += [("rewriting", *t) for t in REWRITES]
    templates = ["What is {w}?", "Define {w}.", "Explain what {w} is in one or two sentences."]
    items += [("definitions", rng.choice(templates).format(w=w), "", d) for w, d in DEFINITIONS]
    items += [("how-to", q, "", a) for q, a in HOWTOS]
    items += [("facts", q, "", a) for q, a in FACTS]
    items += [("code", *t) for t in CODE]
    return items


def truncate(text: str, rng: random.Random) -> str:
    """Cut ``text`` off mid-sentence, at a word boundary 35–60% of the way in."""
    cut = text.rfind(" ", 0, int(len(text) * rng.uniform(0.35, 0.6)))
    return text[:cut].rstrip(" ,;:")


def shuffled_items(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """The correct records in pool order (record k is item k before any breaking)."""
    items = clean_items(rng)
    rng.shuffle(items)
    return items


def build(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    items = shuffled_items(rng)
    order = list(range(len(items)))
    long = [k for k in order if len(items[k][3].split()) >= 14 and items[k][0] != "code"]
    truncated = rng.sample(long, N_BROKEN["truncated"])
    rest = [k for k in order if k not in truncated]
    mismatched = rng.sample(rest, N_BROKEN["mismatched"])
    rest = [k for k in rest if k not in mismatched]
    empty = rng.sample(rest, N_BROKEN["empty"])

    records = []
    for k, (topic, instruction, given, output) in enumerate(items):
        issue = ""
        if k in truncated:
            issue, output = "truncated", truncate(output, rng)
        elif k in mismatched:
            other = rng.choice([j for j in order if items[j][0] != topic])
            issue, output = "mismatched", items[other][3]
        elif k in empty:
            issue, output = "empty", EMPTY_ANSWERS[empty.index(k)]
        records.append({"id": f"demo-{k:04d}", "topic": topic, "instruction": instruction,
                        "input": given, "output": output, "issue": issue})
    return records


def main() -> None:
    records = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                   encoding="utf-8")
    counts = {i: sum(r["issue"] == i for r in records) for i in ("", *N_BROKEN)}
    print(f"wrote {len(records)} records to {OUT} ({counts})")


if __name__ == "__main__":
    main()
