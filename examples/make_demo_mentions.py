"""Generate the demo's week of mentions (examples/demo/mentions.jsonl), deterministically.

Two fictional brands: *Spoorweg Noord* (a Dutch regional railway) and *Kettle & Co* (an English
web shop for kitchenware), plus a competitor railway. Volume follows the hour of the day; on day
six a signal failure makes negative mentions of Spoorweg Noord surge for about two hours. All texts
are written for this demo. Run: ``python examples/make_demo_mentions.py``.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20261109
START = datetime(2026, 11, 9, 0, 0, tzinfo=UTC)  # a Monday; the demo shifts it to last week
DAYS = 7
OUT = Path(__file__).with_name("demo") / "mentions.jsonl"

STATIONS = ["Groningen", "Assen", "Zwolle", "Leeuwarden", "Meppel", "Hoogeveen", "Emmen", "Heerenveen"]
PRODUCTS = ["kettle", "teapot", "cast iron pan", "knife set", "coffee grinder", "toaster", "mixing bowls"]

NL_PRAISE = [
    "Wat een vriendelijke conducteur vanochtend in de trein van Spoorweg Noord naar {st}, echt een topper!",
    "Compliment voor Spoorweg Noord: trein precies op tijd in {st} en lekker rustig. Zo kan het dus ook 👏",
    "De nieuwe treinen van Spoorweg Noord zijn echt fijn, stil en schoon. Heerlijk gereisd naar {st}.",
    "Super geholpen door de medewerker op station {st}, mijn verloren tas is terug! Bedankt Spoorweg Noord ❤️",
    "Eerlijk is eerlijk: Spoorweg Noord doet het deze week geweldig, elke dag op tijd naar {st}.",
    "Wifi in de trein van Spoorweg Noord werkt eindelijk perfect. Top!",
]
NL_NEUTRAL = [
    "Rijdt Spoorweg Noord vanavond ook de late trein naar {st}?",
    "Morgen met Spoorweg Noord naar {st}, iemand tips voor een goede koffie op het station?",
    "Spoorweg Noord past de dienstregeling aan vanaf december, zie de site voor {st}.",
    "Zit in de trein van Spoorweg Noord richting {st}.",
    "Weet iemand of je bij Spoorweg Noord een fiets mag meenemen in de spits?",
]
NL_COMPLAINT = [
    "@spoorwegnoord alweer vertraging richting {st}, derde keer deze week. Ik kom te laat op mijn werk!",
    "Spoorweg Noord, jullie trein naar {st} is gewoon uitgevallen zonder melding. Belachelijk.",
    "Al een half uur staan wachten op station {st}. Spoorweg Noord geeft geen enkele informatie. Slecht!",
    "@swn_helpt mijn ov-chipkaart is twee keer afgeschreven voor dezelfde rit naar {st}, wie lost dit op?",
    "Overvolle trein van Spoorweg Noord, staan tot {st}. Dit is echt niet normaal meer.",
]
NL_OUTAGE = [
    "Storing bij Spoorweg Noord, geen treinen tussen {st} en Zwolle. Hoe lang nog??",
    "Sein storing bij {st}, alles ligt plat bij Spoorweg Noord. Vastgezeten in de trein zonder info 😡",
    "@spoorwegnoord sta al een uur stil bij {st} door de storing, geen bussen, geen informatie!",
    "Weer een storing bij Spoorweg Noord. Honderden mensen gestrand op station {st}. Schandalig.",
    "Spoorweg Noord storing: ik mis mijn vlucht door jullie. Geen vervangend vervoer bij {st}!",
    "Geen treinen Spoorweg Noord bij {st} door seinstoring, chaos op het perron en niemand weet iets",
]
EN_PRAISE = [
    "Just got my new {p} from Kettle & Co and it is gorgeous. Arrived a day early too!",
    "Kettle & Co customer service is brilliant, they replaced my {p} in two days. Love them.",
    "Honestly the best {p} I have ever owned, thank you Kettle and Co 😍",
    "Shout out to Kettle & Co for the lovely handwritten note in my {p} order. Made my day!",
    "Kettle & Co never disappoints. Beautiful {p}, great packaging, fast delivery.",
]
EN_NEUTRAL = [
    "Does Kettle & Co ship to Ireland? Looking at their {p}.",
    "Kettle & Co have a sale on {p}s this weekend apparently.",
    "Comparing the Kettle & Co {p} with the one from the supermarket, any opinions?",
    "Ordered a {p} from Kettle & Co, delivery expected Thursday.",
]
EN_COMPLAINT = [
    "@kettleandco my {p} arrived broken and nobody answers my emails. Really disappointed.",
    "Kettle & Co charged me twice for one {p} order and support just ignores me. Terrible service.",
    "Waited three weeks for my {p} from Kettle & Co and it still hasn't shipped. Want a refund!",
    "@kettleandco the handle of my new {p} snapped off after one week. Is this your quality now?",
]
COMPETITOR = [
    "Spoorlijn Zuid was vandaag weer op tijd, prima reis naar Eindhoven.",
    "Spoorlijn Zuid heeft vertraging bij Tilburg, balen.",
    "Rustig in de trein van Spoorlijn Zuid vandaag.",
]
REVIEWS_GOOD = [
    "Prachtige {p}, snelle levering en goede verpakking. Aanrader!",
    "Lovely {p}, exactly as described. Will buy again from Kettle & Co.",
]
REVIEWS_BAD = [
    "{p} kapot aangekomen en na twee weken nog geen reactie van de klantenservice.",
    "Terrible experience, the {p} was scratched and the refund took a month.",
]
FIRST = [
    "sanne",
    "joost",
    "emma",
    "daan",
    "lotte",
    "bram",
    "fleur",
    "ruben",
    "amy",
    "tom",
    "olivia",
    "jack",
    "maya",
    "noah",
]


NL_TAILS = [
    "",
    "",
    " #ov",
    " #spoorwegnoord",
    " Echt waar.",
    " Wie herkent dit?",
    " (trein van {hh}:{mm})",
    " om {hh}:{mm}",
    " vanuit {st}",
]
EN_TAILS = ["", "", " #kitchen", " Just saying.", " (order {n})", " Anyone else?", " today", " this week"]


def _tail(rng: random.Random, tails: list[str]) -> str:
    """A neutral ending so templated posts do not come out word-for-word identical."""
    return rng.choice(tails).format(
        hh=f"{rng.randint(6, 22):02d}",
        mm=f"{rng.randint(0, 59):02d}",
        st=rng.choice(STATIONS),
        n=rng.randint(1000, 9999),
    )


def _author(rng: random.Random) -> dict[str, object]:
    name = rng.choice(FIRST)
    handle = f"{name}{rng.randint(1, 999)}"
    followers = int(math.exp(rng.gauss(5.0, 1.6)))
    if rng.random() < 0.02:
        followers = rng.randint(20_000, 250_000)  # now and then a large account
    return {"handle": handle, "name": name.title(), "followers": followers}


def _rate(ts: datetime) -> float:
    """Mentions per 5 minutes per brand by hour of day (quiet at night, busy at rush hours)."""
    hour = ts.hour + ts.minute / 60
    base = 0.04 + 0.35 * math.exp(-((hour - 8.5) ** 2) / 3) + 0.3 * math.exp(-((hour - 17.5) ** 2) / 4)
    return base + (0.12 if 9 <= hour <= 22 else 0.0)


def generate() -> list[dict[str, object]]:
    """All demo mentions in time order."""
    rng = random.Random(SEED)
    out: list[dict[str, object]] = []
    counter = 0
    outage_start = START + timedelta(days=5, hours=7, minutes=40)

    def add(ts: datetime, source: str, text: str, **extra: object) -> None:
        nonlocal counter
        counter += 1
        if "repost_of" not in extra:
            text += _tail(rng, NL_TAILS if extra.get("lang") == "nl" else EN_TAILS)
        author = extra.pop("author", None) or _author(rng)
        post_id = f"demo-{counter:05d}"
        out.append(
            {
                "id": post_id,
                "source": source,
                "created_at": (ts + timedelta(seconds=rng.randint(0, 299)))
                .isoformat()
                .replace("+00:00", "Z"),
                "text": text,
                "author": author,
                "url": f"https://example.org/{source}/{post_id}",
                **extra,
            }
        )

    ts = START
    while ts < START + timedelta(days=DAYS):
        rate = _rate(ts)
        for _ in range(_poisson(rng, rate * 1.3)):
            roll = rng.random()
            st = rng.choice(STATIONS)
            if roll < 0.30:
                add(ts, "x", rng.choice(NL_PRAISE).format(st=st), lang="nl")
            elif roll < 0.65:
                add(ts, "x", rng.choice(NL_NEUTRAL).format(st=st), lang="nl")
            else:
                text = rng.choice(NL_COMPLAINT).format(st=st)
                mentions = (
                    ["spoorwegnoord"]
                    if text.startswith("@spoorwegnoord")
                    else ["swn_helpt"]
                    if "@swn_helpt" in text
                    else []
                )
                add(ts, "x", text, lang="nl", mentions=mentions)
        for _ in range(_poisson(rng, rate)):
            roll = rng.random()
            p = rng.choice(PRODUCTS)
            if roll < 0.35:
                add(ts, rng.choice(["x", "reddit", "mastodon"]), rng.choice(EN_PRAISE).format(p=p), lang="en")
            elif roll < 0.7:
                add(ts, rng.choice(["x", "reddit"]), rng.choice(EN_NEUTRAL).format(p=p), lang="en")
            elif roll < 0.9:
                text = rng.choice(EN_COMPLAINT).format(p=p)
                add(ts, "x", text, lang="en", mentions=["kettleandco"] if "@kettleandco" in text else [])
            elif roll < 0.95:
                add(
                    ts,
                    "trustpilot",
                    "Kettle & Co: " + rng.choice(REVIEWS_GOOD).format(p=p),
                    rating=5,
                    rating_max=5,
                )
            else:
                add(
                    ts,
                    "trustpilot",
                    "Kettle & Co: " + rng.choice(REVIEWS_BAD).format(p=p),
                    rating=1,
                    rating_max=5,
                )
        if rng.random() < rate * 0.3:
            add(ts, "x", rng.choice(COMPETITOR), lang="nl")
        minutes = (ts - outage_start).total_seconds() / 60
        if 0 <= minutes < 150:
            # The crisis: a fast rise, a plateau, a slow decay.
            intensity = (
                14 * min(1.0, (minutes + 5) / 30) * (1.0 if minutes < 80 else math.exp(-(minutes - 80) / 30))
            )
            for _ in range(_poisson(rng, intensity)):
                st = rng.choice(["Assen", "Meppel", "Hoogeveen"])
                text = rng.choice(NL_OUTAGE).format(st=st)
                add(ts, "x", text, lang="nl", mentions=["spoorwegnoord"] if "@spoorwegnoord" in text else [])
                if rng.random() < 0.15:
                    original = out[-1]
                    add(
                        ts,
                        "x",
                        f"RT @{original['author']['handle']}: {text}",
                        lang="nl",
                        repost_of=original["id"],
                    )  # type: ignore[index]
        ts += timedelta(minutes=5)
    out.sort(key=lambda m: str(m["created_at"]))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth), fine for the small rates used here."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def main() -> None:
    """Write the JSONL file."""
    rows = generate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} mentions to {OUT}")


if __name__ == "__main__":
    main()
