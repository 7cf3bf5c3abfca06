"""Closed-class, code and template guards (#12): table-driven, hand-written examples.

Each refusal is asserted at a similarity the threshold would serve (0.97, above the small-edit
shortcut), so only what differs decides. Controls run with the real model at their real cosine:
a guard that refuses everything fails them.
"""

from __future__ import annotations

import pytest

from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins._precision._align import closed_class_conflict, code_conflict, sentences
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD, check_guards

HIGH = 0.97

ORDINALS = [
    ("Who won the first world war?", "Who won the second world war?"),
    ("What happened in the first quarter?", "What happened in the third quarter?"),
    ("What is the first step?", "What is the second step?"),
    ("Write the first prompt", "Write the second prompt"),
    ("Who was the first president of the US?", "Who was the 16th president of the US?"),
    ("Summarise the second chapter", "Summarise the fifth chapter"),
    ("Is this my first payment?", "Is this my 2nd payment?"),
    ("What is the fourth planet from the sun?", "What is the fifth planet from the sun?"),
]
NUMBER_WORDS = [
    ("I have two cards", "I have three cards"),
    ("Convert twenty dollars to euros", "Convert thirty dollars to euros"),
    ("Recipe for a dozen cookies", "Recipe for a hundred cookies"),
    ("Book a table for four", "Book a table for six"),
]
CLOSED = [
    ("Find the cheapest flight to Paris", "Find the most expensive flight to Paris"),
    ("What is the least expensive plan?", "What is the priciest plan?"),
    ("What is the best phone under 300 dollars?", "What is the worst phone under 300 dollars?"),
    ("Which is better, tea or coffee?", "Which is worse, tea or coffee?"),
    ("Should I eat more salt?", "Should I eat less salt?"),
    ("What to do before an interview", "What to do after an interview"),
    ("Find the min of a list in Python", "Find the max of a list in Python"),
    ("What is the minimum wage in Texas?", "What is the maximum wage in Texas?"),
    ("Is the exit on the left?", "Is the exit on the right?"),
    ("Convert this string to uppercase", "Convert this string to lowercase"),
    ("Convert this string to upper case", "Convert this string to lower case"),
    ("How do I log in to my account?", "How do I log out of my account?"),
    ("What are the import rules for cheese?", "What are the export rules for cheese?"),
    ("How do I scroll up in vim?", "How do I scroll down in vim?"),
    ("What time does the store open?", "What time does the store close?"),
    ("How to turn on dark mode", "How to turn off dark mode"),
    ("Which is the largest ocean?", "Which is the smallest ocean?"),
    ("What is the fastest way to Rome?", "What is the slowest way to Rome?"),
    ("Show the newest messages", "Show the oldest messages"),
    ("What is the highest mountain in Europe?", "What is the lowest mountain in Europe?"),
    ("Meetings on Monday", "Meetings on Friday"),
    ("What happens in March?", "What happens in October?"),
    ("Go to the previous page", "Go to the next page"),
    ("How do I upload a file to Drive?", "How do I download a file from Drive?"),
    ("Is it colder in the north of Italy?", "Is it colder in the south of Italy?"),
    ("Paint the wall red", "Paint the wall blue"),
    (
        "Put the cup left of the plate, the fork right of it",
        "Put the cup right of the plate, the fork left of it",
    ),
    ("Is Monday before Tuesday?", "Is Tuesday before Monday?"),
]
#: Status and role classes: obligation, employment status, counterpart roles, travel cabins.
ROLES = [
    ("Is the induction course compulsory?", "Is the induction course optional?"),
    ("Is voting mandatory in Belgium?", "Is voting voluntary in Belgium?"),
    ("Are seat belts obligatory on coaches?", "Are seat belts optional on coaches?"),
    ("Which pension do self-employed people get?", "Which pension do employees get?"),
    ("Can I get a mortgage if I'm self-employed?", "Can I get a mortgage if I'm unemployed?"),
    ("What tax do freelancers pay on savings?", "What tax do pensioners pay on savings?"),
    ("Do employed people pay national insurance?", "Do retired people pay national insurance?"),
    ("Who fixes the boiler, the landlord?", "Who fixes the boiler, the tenant?"),
    ("What must a landlord tell the council?", "What must a renter tell the council?"),
    ("What rights does a lessee have?", "What rights does a lessor have?"),
    ("Can a creditor freeze my account?", "Can a debtor freeze my account?"),
    ("Is the driver insured in an accident?", "Is the passenger insured in an accident?"),
    ("How many bags can economy passengers take?", "How many bags can first class flyers take?"),
    ("Do business class seats recline fully?", "Do premium economy seats recline fully?"),
    ("Is food free in economy class?", "Is food free in business class?"),
]
CODE = [
    ("What is 2+3?", "What is 2*3?"),
    ("What is 2 - 3?", "What is 3 - 2?"),
    ("Is a + b + c the same?", "Is a + c * b the same?"),
    ("What is 7 - 2?", "What is 7 / 2?"),
    ("Is x > 5 here?", "Is x < 5 here?"),
    ("Why does a == b fail?", "Why does a != b fail?"),
    ("What does count += 1 do?", "What does count -= 1 do?"),
    ("What is -5 squared?", "What is 5 squared?"),
    ("What does os.path.join do?", "What does os.path.split do?"),
    ("Explain my_list.append()", "Explain my_list.extend()"),
    ("What does `ls -la` print?", "What does `ls -l` print?"),
    ("Why is getUser slow?", "Why is getUsers slow?"),
    ("Fix ```for i in range(3): print(i)```", "Fix ```for i in range(4): print(i)```"),
    ("What does `x[1:]` return?", "What does `x[:1]` return?"),
]


@pytest.mark.parametrize(("a", "b"), ORDINALS + NUMBER_WORDS + CLOSED + ROLES + CODE)
def test_closed_class_and_code_differences_are_refused(a: str, b: str) -> None:
    for query, cached in ((a, b), (b, a)):
        verdict = check_guards(query, cached, HIGH)
        assert not verdict.allowed, (query, cached, verdict)


@pytest.mark.parametrize(
    ("a", "b", "name"),
    [
        (["cheapest", "hotel"], ["most", "expensive", "hotel"], "price"),
        (["log", "in", "now"], ["log", "out", "now"], "direction"),
        (["scroll", "up"], ["scroll", "down"], "vertical"),
        (["left", "then", "right"], ["right", "then", "left"], "side"),
        (["the", "best", "one"], ["the", "best", "one"], ""),
        (
            ["in", "the", "morning"],
            ["log", "out", "in", "the", "morning"],
            "",
        ),  # one-sided
    ],
)
def test_closed_class_conflict_names_the_class(a: list[str], b: list[str], name: str) -> None:
    assert closed_class_conflict(a, b) == name


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 2+3?", "What is 2 plus 3?"),
        ("top-up failed", "top up failed"),
        ("I lost my card - help", "I lost my card, help"),
        ("How many times can I try?", "How often can I try?"),
        ("What does `ls -la` print?", "What does ls -la print?"),
        ("Is it 24/7?", "Is it 24/7 ?"),
        ("How can I activate my card>", "How do i activate my card"),
        ("What is x + y when x = 2?", "When x = 2, what is x + y?"),  # clauses moved
        ("Is the shop open 24/7?", "Is the shop always open?"),
        ("Who planned the 9/11 attacks?", "Who planned the attacks of September 11?"),
        ("Nothing arrived yet.Would you check?", "Nothing arrived yet.What is wrong?"),
    ],
)
def test_prose_punctuation_is_no_code(a: str, b: str) -> None:
    assert code_conflict(a, b) == ""


@pytest.mark.parametrize(
    ("a", "b", "allowed"),
    [
        ("Can I get a second card to give one to my son?", "Can I get another card for my son?",
         True),  # "one" is a pronoun beside an ordinal
        ("Can I get a second card?", "Can I get two cards?", False),
        ("I want two cards", "I want one card", False),
        ("The third one", "The first one", False),
        ("Is the limit 100 requests per minute?", "Is the limit 100 requests per second?", False),
        ("Wait a second", "Wait a minute", False),
    ],
)  # fmt: skip
def test_one_beside_an_ordinal_is_a_pronoun(a: str, b: str, allowed: bool) -> None:
    assert check_guards(a, b, HIGH).allowed is allowed


CONTROLS = [
    ("Who won the first world war?", "Who won the 1st world war?"),
    ("What's the capital of France?", "what is France's capital"),
    ("How do I renew my passport?", "How do I renew my pasport?"),
    ("Where can I recycle old batteries?", "Where can I recylce old batteries?"),
    ("Can I park my bike outside the library?", "Outside the library, can I park my bike?"),
    (
        "What is the cheapest way to get to the airport?",
        "What's the cheapest way to get to the airport?",
    ),
    ("How do I log in to my account?", "How can I log in to my account?"),
    ("What time does the store open on Monday?", "When does the store open on Monday?"),
    ("Convert this string to uppercase", "convert this string to uppercase please"),
    ("Wait a second, what is the first step?", "wait a second, what's the first step?"),
    ("What is the best laptop for students?", "Which laptop is best for students?"),
    ("What does os.path.join do?", "what does os.path.join do"),
    ("Is Monday before Tuesday?", "Does Monday come before Tuesday?"),
    ("Translate to French: I love apples", "Translate into French: I love apples"),
    (
        "Hi, I'm John, order 4521. Where is my package?",
        "Hi, I'm John, order 4521. Where's my package?",
    ),
    ("Is the induction course compulsory?", "Is the induction course mandatory?"),
    ("Which pension do self-employed people get?", "What pension do self employed people get?"),
    ("Can employees work from home?", "Are employees allowed to work from home?"),
    ("Who fixes the boiler, the landlord?", "Who repairs the boiler, the landlord?"),
    ("How many bags can economy passengers take?", "How many bags can economy travellers take?"),
    ("Is food free in business class?", "Do business class passengers get free food?"),
]


@pytest.mark.parametrize(("a", "b"), CONTROLS)
def test_paraphrase_controls_still_pass(embedder: Embedder, a: str, b: str) -> None:
    vectors = embedder.embed([a, b])
    similarity = float(vectors[0] @ vectors[1])
    verdict = check_guards(a, b, similarity, embed=embedder.embed)
    assert verdict.allowed, (a, b, similarity, verdict)


CONTEXT = (
    "Context: Acme Outdoor Gear sells tents, sleeping bags and stoves online and in twelve "
    "stores. Orders ship from our warehouse in Denver within two business days. Standard "
    "shipping is free on orders over fifty dollars; express shipping costs extra and arrives "
    "in one or two days. Items may be returned within thirty days of delivery for a full "
    "refund to the original payment method, provided they are unused and in their original "
    "packaging. Sale items can be exchanged but not refunded. Every tent and stove carries a "
    "two-year warranty against defects in materials and workmanship; the warranty does not "
    "cover wear, misuse or damage from fire. We never sell customer data, and we use cookies "
    "only to keep items in your basket and to measure site traffic. Members of the Acme club "
    "earn points on every purchase and get early access to seasonal sales. Gift cards never "
    "expire and can be used online or in any store.\n\n"
)
TEMPLATE_MISSES = [
    (
        CONTEXT + "Question: What is the refund policy?",
        CONTEXT + "Question: What is the shipping policy?",
    ),
    (
        CONTEXT + "Question: What is the refund policy?",
        CONTEXT + "Question: What is the warranty policy?",
    ),
    (
        CONTEXT + "Question: What is the refund policy?",
        CONTEXT + "Question: What is the privacy policy?",
    ),
    (
        CONTEXT + "Question: What is the exchange policy?",
        CONTEXT + "Question: What is the gift card policy?",
    ),
    (
        CONTEXT + "Question: What is the refund policy?",
        CONTEXT + "Question: What is the refund policy? Answer in French.",
    ),
]
TEMPLATE_HITS = [
    (
        CONTEXT + "Question: What is the refund policy?",
        CONTEXT + "Question: What's your refund policy?",
    ),
    (
        CONTEXT + "Question: What is the refund policy?",
        CONTEXT + "Question: How does the refund policy work?",
    ),
]


@pytest.mark.parametrize(("a", "b"), TEMPLATE_MISSES)
def test_templates_are_judged_on_the_differing_part(embedder: Embedder, a: str, b: str) -> None:
    vectors = embedder.embed([a, b])
    similarity = float(vectors[0] @ vectors[1])
    assert similarity >= DEFAULT_SIMILARITY_THRESHOLD  # the shared context dominates
    assert not check_guards(a, b, similarity, embed=embedder.embed).allowed


@pytest.mark.parametrize(("a", "b"), TEMPLATE_HITS)
def test_template_paraphrases_pass(embedder: Embedder, a: str, b: str) -> None:
    vectors = embedder.embed([a, b])
    similarity = float(vectors[0] @ vectors[1])
    assert check_guards(a, b, similarity, embed=embedder.embed).allowed


def test_sentences_split_at_stops_colons_and_lines() -> None:
    assert sentences("Context: a b. c d?\nQuestion: e") == ["Context:", "a b.", "c d?",
                                                            "Question:", "e"]  # fmt: skip
