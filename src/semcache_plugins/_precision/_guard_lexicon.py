"""General English word lists and word-form helpers for the precision guards.

No entry is taken from any data set.
"""

from __future__ import annotations

import re

__all__ = ["ANTONYM_PAIRS", "CLOSED_CLASSES", "CONTRACTIONS", "DIRECTIONAL", "FALSE_PREFIX_WORDS",
           "FILLERS", "GREETINGS", "IGNORABLE", "IRREGULAR_FORMS", "IS_CONTRACTED", "NEGATORS",
           "NUMBER_WORDS", "ORDINAL_WORDS", "PREFIX_PAIRS", "QUANTIFIER_GROUPS", "SCOPE_SKIP",
           "SECOND_UNIT_BEFORE", "SPAN_ONLY_CLASSES", "SYNONYM_GROUPS", "TECH_TERMS",
           "TEMPORAL_GROUPS", "UNIT_GROUPS", "edit_distance", "stem"]  # fmt: skip


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _groups(text: str) -> dict[str, frozenset[str]]:
    """``canonical: member member ...; ...`` (or one group a line) -> {canonical: members}."""
    pairs = (group.partition(":") for group in re.split(r"[;\n]", text) if group.strip())
    return {name.strip(): _words(members) for name, _, members in pairs}


def _index(text: str) -> dict[str, str]:
    """Like ``_groups`` but word -> canonical."""
    return {word: name for name, words in _groups(text).items() for word in words}


def _mapping(text: str) -> dict[str, str]:
    """``key=value, key=value`` -> dict."""
    pairs = (item.partition("=") for item in text.split(","))
    return {key.strip(): value.strip() for key, _, value in pairs}


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``a/b c/d`` -> ((a, b), (c, d)); an empty side is written ``-``."""
    halves = (item.split("/") for item in text.split())
    return tuple((x.strip("-"), y.strip("-")) for x, y in halves)


def _classes(text: str) -> dict[str, dict[str, str]]:
    """``class: value = member member | value = ...`` lines (indented lines continue the one
    before; ``_`` joins a phrase) -> {class: {member phrase: value}}."""
    out: dict[str, dict[str, str]] = {}
    for line in text.replace("\n    ", " ").strip().splitlines():
        name, _, groups = line.partition(":")
        out[name.strip()] = {
            member.replace("_", " "): value.strip()
            for value, _, members in (group.partition("=") for group in groups.split("|"))
            for member in members.split()
        }
    return out


#: Whole words and endings expanded before comparison ("don't" -> "do not").
CONTRACTIONS = _mapping(
    "won't=will not, can't=can not, cannot=can not, shan't=shall not, ain't=is not, n't=not, "
    "'re=are, 've=have, 'll=will, 'd=would, 'm=am, cant=can not, dont=do not, doesnt=does not, "
    "didnt=did not, isnt=is not, arent=are not, wasnt=was not, werent=were not, "
    "havent=have not, hasnt=has not, hadnt=had not, couldnt=could not, wouldnt=would not, "
    "shouldnt=should not, wont=will not, whats=what is, im=i am, ive=i have, youre=you are, "
    "theyre=they are"
)

#: Words whose presence flips the polarity of a request.
NEGATORS = _words(
    "not no never none nothing nobody nowhere neither nor without non unable avoid prevent "
    "stop quit cease refrain lack lacking except excluding"
)

#: Function words, fillers, politeness and question scaffolding: not content on their own.
#: (Negators, quantifiers, temporal words, units and antonyms are checked separately.)
IGNORABLE = _words(
    "a an the this that these those it its is are was were be been being am do does did "
    "done doing have has had having will would shall should can could may might must "
    "i me my mine myself we us our ours you your yours he him his she her they them their "
    "what which who whom whose how why when where whether if then than so such there here "
    "of for to in on at by with from into onto about as up out over "
    "and or but also just only really very quite please pls plz thanks thank thx cheers "
    "hi hello hey hiya good dear sorry excuse ok okay alright "
    "um uh er erm hmm ah oh well anyway basically actually literally like "
    "question quick silly wondering wonder curious help tell know let need want wanted wish "
    "give show find check look lookup assist mind ahead information info "
    "way ways go going get getting got possible able any anything something someone "
    "many much advance appreciate appreciated kindly mate guys folks again ever still yet "
    "yes yeah yep"
)

#: Greetings, politeness and hesitation: dropped before aligning two texts.
FILLERS = _words(
    "hi hello hey hiya dear sorry excuse ok okay alright um uh er erm hmm ah oh well so anyway "
    "basically actually literally please pls plz thanks thank thx cheers quick question silly "
    "just wondering curious kindly advance appreciate appreciated mate guys folks yes yeah yep"
)

#: Words skipped when looking for the word a negator governs ("not *my* card").
SCOPE_SKIP = _words(
    "a an the my your our their his her its this that i you we they he she it be is are was "
    "were do does did any to so even really ever yet still just also always"
)

#: Words whose "'s" means "is" ("what's"), not a possessive ("Mary's").
IS_CONTRACTED = _words("it that what who where when how there here he she")

#: Prepositions that give a direction: "from A to B" differs from "from B to A".
DIRECTIONAL = _words("to from into than vs versus")

#: Greetings that look like times of day ("Morning! ...").
GREETINGS = _words("morning afternoon evening")

#: Cardinal number words ("one" is kept as a word: it is often a pronoun).
NUMBER_WORDS = {
    word: float(value)
    for word, value in _mapping(
        "zero=0, one=1, two=2, three=3, four=4, five=5, six=6, seven=7, eight=8, nine=9, ten=10, "
        "eleven=11, twelve=12, thirteen=13, fourteen=14, fifteen=15, sixteen=16, seventeen=17, "
        "eighteen=18, nineteen=19, twenty=20, thirty=30, forty=40, fifty=50, sixty=60, "
        "seventy=70, eighty=80, ninety=90, hundred=100, thousand=1000, million=1000000, "
        "billion=1000000000, dozen=12, couple=2, twice=2, half=0.5, quarter=0.25, double=2, "
        "triple=3"
    ).items()
}

#: Ordinals ("second" is read as the unit after "a"/"per"/a number when no noun follows).
ORDINAL_WORDS = {
    word: int(value)
    for word, value in _mapping(
        "first=1, second=2, third=3, fourth=4, fifth=5, sixth=6, seventh=7, eighth=8, ninth=9, "
        "tenth=10, eleventh=11, twelfth=12, thirteenth=13, fourteenth=14, fifteenth=15, "
        "sixteenth=16, seventeenth=17, eighteenth=18, nineteenth=19, twentieth=20, "
        "thirtieth=30, fortieth=40, fiftieth=50, hundredth=100, thousandth=1000"
    ).items()
}

#: Words before "second" that make it the unit of time ("wait a second", "per second").
SECOND_UNIT_BEFORE = _words("a one per each every half split few couple")

#: Times of day, days, months, seasons, frequencies (word -> group); groups differing conflict.
TEMPORAL_GROUPS = _index(
    "today: today tonight; tomorrow: tomorrow; yesterday: yesterday; "
    "am: a.m. morning mornings; pm: pm p.m. afternoon afternoons evening evenings tonight; "
    "night: night nights overnight midnight; noon: noon midday lunchtime; "
    "weekday: weekday weekdays; weekend: weekend weekends; monday: monday mondays mon; "
    "tuesday: tuesday tuesdays tue tues; wednesday: wednesday wednesdays; "
    "thursday: thursday thursdays thu thurs; friday: friday fridays fri; "
    "saturday: saturday saturdays; sunday: sunday sundays; january: january jan; "
    "february: february feb; march: march; april: april apr; may: may; june: june jun; "
    "july: july jul; august: august aug; september: september sept sep; october: october oct; "
    "november: november nov; december: december dec; spring: spring; "
    "summer: summer summertime; autumn: autumn fall; winter: winter wintertime; "
    "hourly: hourly; daily: daily everyday; weekly: weekly; monthly: monthly; "
    "yearly: yearly annual annually; quarterly: quarterly"
)

#: Quantifiers (word -> group); different groups on the two sides conflict.
QUANTIFIER_GROUPS = _index(
    "all: all every each entire whole always; some: some several few partial sometimes; "
    "none: none nothing nobody; most: most majority mostly; both: both; either: either"
)

#: Units of measure, currencies and data sizes (word -> unit).
UNIT_GROUPS = _index(
    "km: km kms kilometer kilometers kilometre kilometres; mile: mi mile miles mph; "
    "m: meter meters metre metres; cm: cm centimeter centimeters centimetre centimetres; "
    "mm: mm millimeter millimeters millimetre millimetres; inch: inch inches; "
    "foot: ft foot feet; yard: yd yard yards; kg: kg kgs kilo kilos kilogram kilograms; "
    "g: gram grams gramme grammes; lb: lb lbs; oz: oz ounce ounces; stone: stone stones; "
    "l: litre litres liter liters; ml: ml millilitre millilitres milliliter milliliters; "
    "gallon: gallon gallons; pint: pint pints; celsius: celsius centigrade; "
    "fahrenheit: fahrenheit; kelvin: kelvin; kb: kb kilobyte kilobytes; "
    "mb: mb megabyte megabytes; gb: gb gigabyte gigabytes gig gigs; tb: tb terabyte terabytes; "
    "mbps: mbps; kwh: kwh kw kilowatt; calorie: kcal calorie calories; "
    "usd: $ usd dollar dollars; gbp: £ gbp pound pounds quid sterling; eur: € eur euro euros; "
    "jpy: ¥ yen jpy; percent: % percent percentage; second: sec secs second seconds; "
    "minute: min mins minute minutes; hour: hr hrs hour hours; day: day days; "
    "week: wk wks week weeks; month: month months; year: yr yrs year years"
)

#: Well-known programming languages, file formats, operating systems, platforms and tools.
TECH_TERMS = _words(
    "python java javascript typescript js ts rust golang c c++ c# csharp cpp ruby php swift "
    "kotlin scala perl haskell lua dart elixir erlang clojure matlab fortran cobol julia bash "
    "powershell sql mysql postgres postgresql sqlite mongodb redis oracle html css sass "
    "json xml yaml yml toml csv tsv pdf docx doc xlsx xls pptx ppt txt markdown md rtf odt "
    "png jpg jpeg gif svg webp bmp tiff heic mp3 mp4 wav flac aac mov avi mkv zip tar gz rar "
    "7z iso exe dmg apk epub windows macos mac osx linux ubuntu debian fedora ios android "
    "chromeos iphone ipad pixel kindle chrome firefox safari edge excel word powerpoint "
    "react angular vue django flask rails spring node nodejs deno docker kubernetes "
    "aws azure gcp heroku vercel github gitlab bitbucket git svn npm pip conda maven gradle"
)

#: Closed classes: members of one class are interchangeable to the embedder but not in meaning
#: ("cheapest" / "most expensive", "left" / "right"). ``class: value = member member, ...``;
#: a member may be a phrase of up to three words. Two texts conflict when an aligned differing
#: span holds different values of one class (and, outside ``SPAN_ONLY_CLASSES``, when each text
#: holds a value of the class that the other lacks).
CLOSED_CLASSES = _classes("""
price: low = cheap cheaper cheapest inexpensive affordable least_expensive less_expensive
    lowest_price | high = expensive pricey pricier priciest costly costliest dearest dearer
    more_expensive most_expensive highest_price
quality: good = best better top_rated | bad = worst worse lowest_rated
size: big = big bigger biggest large larger largest huge | small = small smaller smallest tiny
amount: more = more greater most | less = less fewer least
bound: lower = at_least more_than over no_less_than | upper = at_most less_than fewer_than under
    up_to no_more_than
extreme: max = max maximum maximal maximise maximize | min = min minimum minimal minimise
    minimize
speed: fast = fast faster fastest quick quicker quickest | slow = slow slower slowest
age: new = new newer newest latest | old = old older oldest earliest
height: high = high higher highest tall taller tallest | low = low lower lowest short shorter
    shortest
order: before = before prior_to ahead_of | after = after afterwards
sequence: next = next upcoming | previous = previous preceding
side: left = left leftmost | right = right rightmost
vertical: up = up upward upwards upstairs uphill | down = down downward downwards downstairs
    downhill
letter_case: upper = uppercase upper_case capital_letters capitals all_caps caps capitalize
    capitalise | lower = lowercase lower_case small_letters lower_letters
level: upper = upper | lower = lower bottom
direction: in = in into inward incoming inbound inside | out = out outward outgoing outbound
    outside
switch: on = turn_on switch_on turned_on switched_on power_on | off = turn_off switch_off
    turned_off switched_off power_off
trade: import = import imports imported importing | export = export exports exported
    exporting
transfer: upload = upload uploads uploaded uploading | download = download downloads
    downloaded downloading
state: open = open opens opened opening reopen | close = close closes closed closing shut
run: start = start starts started starting begin | stop = stop stops stopped stopping finish
compass: north = north northern | south = south southern | east = east eastern | west = west
    western
color: red = red | blue = blue | green = green | yellow = yellow | black = black
    | white = white | orange = orange | purple = purple | pink = pink | brown = brown
    | grey = grey gray | silver = silver | gold = gold golden
sign: plus = plus positive | minus = minus negative
truth: true = true | false = false
employment: employed = employed employee employees | self = self_employed freelance freelancer
    freelancers sole_trader sole_traders | unemployed = unemployed jobless | retired = retired
    pensioner pensioners
cabin: economy = economy economy_class | premium = premium_economy | business = business_class
    | first = #1th_class
""")

#: Classes whose words are common in other senses ("in", "on", "close to"): only a replacement
#: in an aligned differing span counts.
SPAN_ONLY_CLASSES = _words(
    "order sequence side vertical level direction switch state run amount bound height age size "
    "sign cabin"
)


#: Common antonym pairs (checked both ways); general vocabulary only.
ANTONYM_PAIRS = _pairs(
    "open/close open/closed opened/closed opening/closing add/remove added/removed "
    "adding/removing enable/disable enabled/disabled accept/decline accept/reject "
    "accepted/declined accepted/rejected allow/ban allow/forbid allow/prohibit "
    "allowed/banned allowed/forbidden allowed/prohibited permitted/prohibited "
    "include/exclude included/excluded including/excluding hot/cold warm/cold "
    "pass/fail passed/failed success/failure succeed/fail successful/failed "
    "lock/unlock locked/unlocked in/out on/off up/down start/stop start/end "
    "begin/end beginning/end buy/sell bought/sold buying/selling increase/decrease "
    "increase/reduce raise/lower more/less more/fewer most/least best/worst better/worse "
    "before/after early/late earlier/later earliest/latest first/last #1th/last min/max "
    "minimum/maximum high/low higher/lower highest/lowest fast/slow faster/slower "
    "fastest/slowest import/export upload/download send/receive sent/received "
    "incoming/outgoing inbound/outbound push/pull win/lose won/lost winner/loser "
    "gain/loss profit/loss credit/debit deposit/withdraw deposit/withdrawal "
    "borrow/lend lender/borrower safe/dangerous true/false right/wrong correct/incorrect "
    "same/different men/women man/woman male/female boy/girl boys/girls he/she him/her "
    "his/her husband/wife father/mother dad/mum dad/mom son/daughter brother/sister "
    "private/public old/new young/old big/small large/small long/short tall/short "
    "cheap/expensive cheapest/dearest free/paid light/dark top/bottom left/right "
    "north/south east/west inside/outside internal/external input/output "
    "positive/negative arrive/depart arrival/departure arrivals/departures entry/exit "
    "entrance/exit mandatory/optional required/optional compulsory/optional obligatory/optional "
    "compulsory/voluntary mandatory/voluntary legal/illegal "
    "benefit/risk benefits/risks advantage/disadvantage advantages/disadvantages "
    "pros/cons strength/weakness strengths/weaknesses join/leave joining/leaving "
    "connect/disconnect subscribe/unsubscribe install/uninstall show/hide visible/hidden "
    "asleep/awake rise/fall wet/dry heavy/light thick/thin wide/narrow full/empty rich/poor "
    "happy/sad love/hate like/dislike agree/disagree approve/reject approved/rejected "
    "approved/declined valid/invalid active/inactive online/offline wired/wireless "
    "manual/automatic hard/soft hard/easy easy/difficult simple/complex above/below "
    "over/under inner/outer upper/lower front/back forward/backward forwards/backwards "
    "encrypt/decrypt encryption/decryption mount/unmount arrive/leave came/went come/go "
    "domestic/international local/international local/foreign national/international "
    "parent/child employer/employee landlord/tenant landlord/renter lessor/lessee "
    "creditor/debtor driver/passenger buyer/seller sender/recipient payer/payee host/guest "
    "teacher/student doctor/patient question/answer cause/effect cause/cure "
    "upstairs/downstairs uphill/downhill day/night sunrise/sunset summer/winter "
    "inbox/outbox sweet/sour raw/cooked fresh/frozen odd/even plus/minus add/subtract "
    "multiply/divide sum/difference union/intersection ascending/descending "
    "singular/plural past/future past/present present/future always/never often/rarely "
    "everything/nothing everyone/nobody somebody/nobody next/last next/previous last/this "
    "next/this full/part within/after within/outside within/beyond"
)

#: Prefix pairs that turn a word into its opposite on a shared stem (``-`` = no prefix).
PREFIX_PAIRS = _pairs(
    "-/un -/non -/dis -/in -/im -/il -/ir -/de -/anti -/mis en/dis en/de in/ex im/ex in/de "
    "inc/dec up/down over/under pre/post inter/intra sub/super pro/anti pro/con max/min "
    "in/out on/off"
)

#: Words that merely look like prefix + stem ("discover" is not "not cover").
FALSE_PREFIX_WORDS = _words(
    "discover discovered display displayed discount discounts discharge dispatch dispatched "
    "dispose disease distance dissolve dismiss dispute distinct distribute district "
    "inform information informed invest invested investment intend interest index income "
    "indeed insist inside install installed instance instant instead insure insured "
    "intent invoice invoices involve involved import imports impress imply impose "
    "until under unit united unity universe university union unique "
    "detail details deliver delivery delivered depend deposit deposits define degree "
    "design desk demand demo deal debit debt decide declare delay delete deleted "
    "mission mist misty illustrate illness ironic irish iron"
)

#: Names of the same thing that the embedder scores low (multi-word names joined by "-").
SYNONYM_GROUPS = (
    _words("uk britain british gb great-britain united-kingdom"),
    _words("us usa america american united-states"),
    _words("tv television telly"),
    _words("phone mobile cellphone smartphone cell"),
    _words("email e-mail mail"),
)

#: Irregular verb forms -> base form, so "sent" and "send" match.
IRREGULAR_FORMS = {
    form: base
    for base, forms in _groups(
        "be: was were been being am is are; have: has had; do: did done does; get: got gotten; "
        "send: sent; pay: paid; buy: bought; sell: sold; lose: lost; win: won; find: found; "
        "give: gave given; take: took taken; make: made; go: went gone; come: came; see: saw seen; "
        "say: said; tell: told; think: thought; bring: brought; keep: kept; hold: held; "
        "spend: spent; lend: lent; write: wrote written; break: broke broken; "
        "choose: chose chosen; forget: forgot forgotten; steal: stole stolen; "
        "freeze: froze frozen; withdraw: withdrew withdrawn; run: ran; begin: began begun; "
        "know: knew known; feel: felt; hear: heard; mean: meant; meet: met; "
        "understand: understood; drive: drove driven; fly: flew flown; eat: ate eaten; "
        "drink: drank drunk"
    ).items()
    for form in forms
}


_SUFFIXES = (("ies", "y", 5), ("ied", "y", 5), ("sses", "ss", 5), ("ing", "", 6), ("ed", "", 5),
             ("es", "", 5), ("s", "", 4))  # fmt: skip


def stem(word: str) -> str:
    """A light stem: irregular verbs to their base, then one suffix and a final "e" off."""
    if word in IRREGULAR_FORMS:
        return IRREGULAR_FORMS[word]
    if word.startswith("#") or len(word) <= 3:
        return word
    for suffix, repl, min_len in _SUFFIXES:
        if word.endswith(suffix) and len(word) >= min_len and not word.endswith(("ss", "us", "is")):
            word = word[: len(word) - len(suffix)] + repl
            break
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]
