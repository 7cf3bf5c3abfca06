"""General English word lists used by the precision guards (no data-set specific entries)."""

from __future__ import annotations

__all__ = [
    "ANTONYM_PAIRS",
    "IRREGULAR_FORMS",
    "CONTRACTIONS",
    "FALSE_PREFIX_WORDS",
    "IGNORABLE",
    "NEGATORS",
    "NUMBER_WORDS",
    "ORDINAL_WORDS",
    "PREFIX_PAIRS",
    "QUANTIFIER_GROUPS",
    "SYNONYM_GROUPS",
    "TECH_TERMS",
    "TEMPORAL_GROUPS",
    "UNIT_GROUPS",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Contraction endings, expanded before comparison ("don't" -> "do not").
CONTRACTIONS: dict[str, str] = {
    "won't": "will not", "can't": "can not", "cannot": "can not", "shan't": "shall not",
    "ain't": "is not", "n't": " not", "'re": " are", "'ve": " have", "'ll": " will",
    "'d": " would", "'m": " am",
}

#: Words whose presence flips the polarity of a request.
NEGATORS = _words(
    "not no never none nothing nobody nowhere neither nor without non avoid prevent "
    "stop quit cease refrain lack lacking except excluding"
)

#: Function words, fillers, politeness and question scaffolding: differences here never matter.
IGNORABLE = _words(
    "a an the this that these those it its it's is are was were be been being am do does did "
    "done doing have has had having will would shall should can could may might must "
    "i me my mine myself we us our ours you your yours he him his she her they them their "
    "what which who whom whose how why when where whether if then than so such there here "
    "of for to in on at by with from into onto about as up out over "
    "and or but also just only really very quite please pls plz thanks thank thx cheers "
    "hi hello hey hiya good dear sorry excuse ok okay alright "
    "um uh er erm hmm ah oh well so anyway basically actually literally "
    "question quick silly wondering wonder curious help tell know let need want wanted "
    "way ways go going get getting got possible able any anything something someone "
    "many much advance appreciate appreciated kindly mate guys folks again ever still yet "
    "yes yeah yep"
)
# Words that look like fillers but carry meaning in a diff are kept out of IGNORABLE on purpose:
# negators, quantifiers, temporal words, units and antonym members are checked separately.

#: Cardinal number words (values).
NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12, "couple": 2, "twice": 2,
    "half": 0.5, "quarter": 0.25, "double": 2, "triple": 3,
}  # type: ignore[dict-item]

ORDINAL_WORDS: dict[str, int] = {
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20,
}

#: Canonical form -> members. Two texts naming different groups' members conflict.
TEMPORAL_GROUPS: dict[str, frozenset[str]] = {
    "today": _words("today tonight"),
    "tomorrow": _words("tomorrow"),
    "yesterday": _words("yesterday"),
    "am": _words("a.m. morning mornings"),
    "pm": _words("pm p.m. afternoon afternoons evening evenings tonight"),
    "night": _words("night nights overnight midnight"),
    "noon": _words("noon midday lunchtime"),
    "weekday": _words("weekday weekdays"),
    "weekend": _words("weekend weekends"),
    "monday": _words("monday mondays mon"),
    "tuesday": _words("tuesday tuesdays tue tues"),
    "wednesday": _words("wednesday wednesdays wed"),
    "thursday": _words("thursday thursdays thu thurs"),
    "friday": _words("friday fridays fri"),
    "saturday": _words("saturday saturdays sat"),
    "sunday": _words("sunday sundays sun"),
    "january": _words("january jan"), "february": _words("february feb"),
    "march": _words("march mar"), "april": _words("april apr"), "may": _words("may"),
    "june": _words("june jun"), "july": _words("july jul"), "august": _words("august aug"),
    "september": _words("september sept sep"), "october": _words("october oct"),
    "november": _words("november nov"), "december": _words("december dec"),
    "spring": _words("spring"), "summer": _words("summer summertime"),
    "autumn": _words("autumn fall"), "winter": _words("winter wintertime"),
    "hourly": _words("hourly"), "daily": _words("daily everyday"),
    "weekly": _words("weekly"), "monthly": _words("monthly"),
    "yearly": _words("yearly annual annually"), "quarterly": _words("quarterly"),
}

#: Quantifier groups; different groups on the two sides conflict.
QUANTIFIER_GROUPS: dict[str, frozenset[str]] = {
    "all": _words("all every each entire whole always"),
    "some": _words("some several few partial sometimes"),
    "none": _words("none nothing nobody"),
    "most": _words("most majority mostly"),
    "both": _words("both"),
    "either": _words("either"),
}

#: Units of measure, currency and data size: canonical -> spellings.
UNIT_GROUPS: dict[str, frozenset[str]] = {
    "km": _words("km kms kilometer kilometers kilometre kilometres"),
    "mile": _words("mi mile miles mph"), "m": _words("meter meters metre metres"),
    "cm": _words("cm centimeter centimeters centimetre centimetres"),
    "mm": _words("mm millimeter millimeters millimetre millimetres"),
    "inch": _words("in. inch inches"), "foot": _words("ft foot feet"),
    "yard": _words("yd yard yards"), "kg": _words("kg kgs kilo kilos kilogram kilograms"),
    "g": _words("gram grams gramme grammes"), "lb": _words("lb lbs pound-weight"),
    "oz": _words("oz ounce ounces"), "stone": _words("stone stones"),
    "l": _words("litre litres liter liters"), "ml": _words("ml millilitre millilitres"),
    "gallon": _words("gallon gallons"), "pint": _words("pint pints"),
    "celsius": _words("celsius centigrade"), "fahrenheit": _words("fahrenheit"),
    "kelvin": _words("kelvin"), "kb": _words("kb kilobyte kilobytes"),
    "mb": _words("mb megabyte megabytes"), "gb": _words("gb gigabyte gigabytes gig gigs"),
    "tb": _words("tb terabyte terabytes"), "mbps": _words("mbps"),
    "kwh": _words("kwh kw kilowatt"), "calorie": _words("kcal calorie calories"),
    "usd": _words("$ usd dollar dollars"), "gbp": _words("£ gbp pound pounds quid sterling"),
    "eur": _words("€ eur euro euros"), "jpy": _words("¥ yen jpy"),
    "percent": _words("% percent percentage"),
    "second": _words("sec secs second seconds"), "minute": _words("min mins minute minutes"),
    "hour": _words("hr hrs hour hours"), "day": _words("day days"),
    "week": _words("wk wks week weeks"), "month": _words("month months"),
    "year": _words("yr yrs year years"),
}

#: Well-known programming languages, file formats, operating systems and platforms.
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

#: Common antonym pairs (both directions are checked); general vocabulary only.
ANTONYM_PAIRS: tuple[tuple[str, str], ...] = tuple(
    tuple(pair.split("/")) for pair in (  # type: ignore[misc]
        "open/close open/closed opened/closed opening/closing add/remove added/removed "
        "adding/removing enable/disable enabled/disabled accept/decline accept/reject "
        "accepted/declined accepted/rejected allow/ban allow/forbid allow/prohibit "
        "allowed/banned allowed/forbidden allowed/prohibited permitted/prohibited "
        "include/exclude included/excluded including/excluding hot/cold warm/cold "
        "pass/fail passed/failed success/failure succeed/fail successful/failed "
        "lock/unlock locked/unlocked in/out on/off up/down start/stop start/end "
        "begin/end beginning/end buy/sell bought/sold buying/selling increase/decrease "
        "increase/reduce raise/lower more/less more/fewer most/least best/worst better/worse "
        "before/after early/late earlier/later earliest/latest first/last min/max "
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
        "entrance/exit mandatory/optional required/optional legal/illegal "
        "benefit/risk benefits/risks advantage/disadvantage "
        "advantages/disadvantages pros/cons strength/weakness strengths/weaknesses "
        "join/leave joining/leaving connect/disconnect subscribe/unsubscribe "
        "install/uninstall show/hide visible/hidden asleep/awake rise/fall wet/dry "
        "heavy/light thick/thin wide/narrow full/empty rich/poor happy/sad love/hate "
        "like/dislike agree/disagree approve/reject approved/rejected approved/declined "
        "valid/invalid active/inactive online/offline wired/wireless manual/automatic "
        "hard/soft hard/easy easy/difficult simple/complex above/below over/under "
        "maximum/least inner/outer upper/lower front/back forward/backward forwards/backwards "
        "import/exports encrypt/decrypt encryption/decryption mount/unmount "
        "arrive/leave came/went come/go domestic/international local/international "
        "local/foreign national/international "
        "parent/child employer/employee buyer/seller "
        "sender/recipient payer/payee host/guest teacher/student doctor/patient "
        "question/answer cause/effect cause/cure pros/cons upstairs/downstairs "
        "uphill/downhill day/night sunrise/sunset summer/winter inbox/outbox "
        "sweet/sour raw/cooked fresh/frozen odd/even plus/minus add/subtract "
        "multiply/divide sum/difference union/intersection ascending/descending "
        "singular/plural past/future past/present present/future always/never "
        "often/rarely everything/nothing everyone/nobody somebody/nobody next/last next/previous "
        "last/this next/this"
    ).split()
)

#: Prefix pairs that turn a word into its opposite (checked on a shared stem).
PREFIX_PAIRS: tuple[tuple[str, str], ...] = (
    ("", "un"), ("", "non"), ("", "dis"), ("", "in"), ("", "im"), ("", "il"), ("", "ir"),
    ("", "de"), ("", "anti"), ("", "mis"), ("en", "dis"), ("en", "de"), ("in", "ex"),
    ("im", "ex"), ("in", "de"), ("inc", "dec"), ("up", "down"), ("over", "under"),
    ("pre", "post"), ("inter", "intra"), ("sub", "super"), ("pro", "anti"), ("pro", "con"),
    ("max", "min"), ("in", "out"), ("on", "off"),
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

#: Small set of general synonym groups the embedder is known to score low.
SYNONYM_GROUPS: tuple[frozenset[str], ...] = (
    _words("uk britain british gb england-and-wales united-kingdom"),
    _words("us usa america american united-states"),
    _words("tv television telly"), _words("phone mobile cellphone smartphone cell"),
    _words("email e-mail mail"),
    _words("baby babies infant infants"),
)

#: Irregular verb forms -> base form, so "sent" and "send" match.
IRREGULAR_FORMS: dict[str, str] = {
    form: base
    for base, forms in (
        ("be", "was were been being am is are"), ("have", "has had"), ("do", "did done does"),
        ("get", "got gotten"), ("send", "sent"), ("pay", "paid"), ("buy", "bought"),
        ("sell", "sold"), ("lose", "lost"), ("win", "won"), ("find", "found"),
        ("give", "gave given"), ("take", "took taken"), ("make", "made"), ("go", "went gone"),
        ("come", "came"), ("see", "saw seen"), ("say", "said"), ("tell", "told"),
        ("think", "thought"), ("bring", "brought"), ("keep", "kept"),
        ("hold", "held"), ("spend", "spent"), ("lend", "lent"), ("write", "wrote written"),
        ("break", "broke broken"), ("choose", "chose chosen"), ("forget", "forgot forgotten"),
        ("steal", "stole stolen"), ("freeze", "froze frozen"), ("withdraw", "withdrew withdrawn"),
        ("run", "ran"), ("begin", "began begun"), ("know", "knew known"), ("feel", "felt"),
        ("hear", "heard"), ("mean", "meant"), ("meet", "met"), ("understand", "understood"), ("drive", "drove driven"),
        ("fly", "flew flown"), ("eat", "ate eaten"), ("drink", "drank drunk"),
    )
    for form in forms.split()
}
