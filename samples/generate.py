"""Writes the sample customer files: ``python samples/generate.py [--as-of YYYY-MM-DD]``.

Deterministic: a fixed seed and a fixed reference date give the same files on every run.
- customers.csv: 300 realistic customers across countries, time zones (including
  Asia/Kathmandu and Pacific/Chatham), locales, consent states, preferences and attributes.
  Customer-since dates are spread over every day of the year, so some anniversaries always
  fall in the coming week; a few are placed in the week after the reference date.
- customers.jsonl: the first 40 of them as JSON Lines, with native JSON types.
- bad_customers.csv: two good rows and one row per kind of defect, plus an unknown column.
``write_bulk_csv`` makes large synthetic files for tests and benchmarks.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import unicodedata
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import phonenumbers

HERE = Path(__file__).resolve().parent
SEED = 20261124
AS_OF = date(2026, 11, 24)
N_CUSTOMERS = 300

COLUMNS = [
    "external_id", "name", "email", "phone", "country", "x_user_id", "x_handle", "timezone", "locale",
    "tier", "customer_since", "email_opt_in", "sms_opt_in", "social_opt_in", "phone_opt_in",
    "marketing_opt_in", "preferred_channels", "frequency", "quiet_start", "quiet_end", "do_not_contact",
    "attr.region", "attr.plan", "attr.lifetime_value", "attr.interests", "attr.nps",
]  # fmt: skip

# country: (weight, time zones, locales, region, first names, last names)
COUNTRIES: dict[str, tuple[int, list[str], list[str], str, list[str], list[str]]] = {
    "US": (60, ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"], ["en-US"],
           "us-east", ["James", "Mary", "Robert", "Linda", "Maria", "David", "Aisha", "Kevin", "Emily"],
           ["Smith", "Johnson", "Garcia", "Brown", "Nguyen", "Miller", "O'Connor", "Washington"]),
    "CA": (12, ["America/Toronto", "America/Vancouver"], ["en-CA", "fr-CA"], "us-east",
           ["Liam", "Chloé", "Noah", "Olivia", "Étienne"], ["Tremblay", "Roy", "Wilson", "Martin"]),
    "GB": (25, ["Europe/London"], ["en-GB"], "eu-west",
           ["Oliver", "Amelia", "Harry", "Isla", "George", "Priya"], ["Taylor", "Davies", "Evans", "Patel"]),
    "DE": (20, ["Europe/Berlin"], ["de-DE", "de"], "eu-central",
           ["Lukas", "Anna", "Jürgen", "Mia", "Felix"], ["Müller", "Schmidt", "Schneider", "Fischer"]),
    "FR": (18, ["Europe/Paris"], ["fr-FR", "fr"], "eu-west",
           ["Louis", "Camille", "Hugo", "Léa", "Chloé"], ["Martin", "Bernard", "Dubois", "Lefèvre"]),
    "ES": (14, ["Europe/Madrid", "Atlantic/Canary"], ["es-ES", "es"], "eu-west",
           ["Lucía", "Hugo", "Martina", "Pablo"], ["García", "Fernández", "López", "Martínez"]),
    "IT": (10, ["Europe/Rome"], ["it-IT"], "eu-central",
           ["Giulia", "Marco", "Sofia", "Luca"], ["Rossi", "Russo", "Ferrari", "Esposito"]),
    "IN": (25, ["Asia/Kolkata"], ["en-IN", "hi-IN"], "ap-south",
           ["Aarav", "Diya", "Vihaan", "Ananya", "Rohan"], ["Sharma", "Iyer", "Reddy", "Gupta", "Singh"]),
    "NP": (8, ["Asia/Kathmandu"], ["ne-NP", "en"], "ap-south",
           ["Aayush", "Sita", "Bikash", "Pooja"], ["Shrestha", "Gurung", "Thapa", "Adhikari"]),
    "JP": (16, ["Asia/Tokyo"], ["ja-JP", "ja"], "ap-northeast",
           ["Haruto", "Yui", "Sota", "Hina"], ["Sato", "Suzuki", "Takahashi", "Tanaka"]),
    "BR": (18, ["America/Sao_Paulo", "America/Manaus"], ["pt-BR"], "sa-east",
           ["João", "Ana", "Gabriel", "Beatriz", "Lucas"], ["Silva", "Santos", "Oliveira", "Souza"]),
    "MX": (8, ["America/Mexico_City"], ["es-MX"], "us-west",
           ["Santiago", "Valentina", "Mateo", "Ximena"], ["Hernández", "González", "Ramírez"]),
    "AU": (14, ["Australia/Sydney", "Australia/Perth", "Australia/Adelaide"], ["en-AU"], "ap-southeast",
           ["Jack", "Charlotte", "William", "Matilda"], ["Jones", "Williams", "Kelly", "Walker"]),
    "NZ": (10, ["Pacific/Auckland", "Pacific/Chatham"], ["en-NZ", "mi-NZ"], "ap-southeast",
           ["Nikau", "Aria", "Oliver", "Mere"], ["Ngata", "Wilson", "Tane", "Smith"]),
}  # fmt: skip
US_WEST_ZONES = {"America/Denver", "America/Los_Angeles", "America/Vancouver"}
PLANS = ["starter", "growth", "scale"]
INTERESTS = ["newsletter", "product_updates", "events", "tips", "offers", "security"]
QUIET_HOURS = [("22:00", "07:00"), ("21:00", "08:00"), ("23:00", "06:30"), ("13:00", "14:00")]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace("'", "")


def _mobile_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    """A valid mobile number for ``region``: the library's example with random last digits."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    digits = phonenumbers.national_significant_number(example)
    while True:
        candidate = digits[:-4] + f"{rng.randrange(10_000):04d}"
        number = phonenumbers.parse("+" + str(example.country_code) + candidate)
        if phonenumbers.is_valid_number(number):
            return number


def _phone_text(rng: random.Random, number: phonenumbers.PhoneNumber) -> str:
    """Written the way people write them: international or national format."""
    style = rng.choice([phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                        phonenumbers.PhoneNumberFormat.NATIONAL])  # fmt: skip
    return phonenumbers.format_number(number, style)


def _maybe(rng: random.Random, p_true: float, p_false: float) -> str:
    roll = rng.random()
    return "yes" if roll < p_true else "no" if roll < p_true + p_false else ""


def customer_rows(as_of: date = AS_OF, n: int = N_CUSTOMERS, seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    countries = list(COUNTRIES)
    weights = [COUNTRIES[c][0] for c in countries]
    first_day = date(2013, 1, 1)
    rows: list[dict[str, str]] = []
    used_emails: set[str] = set()
    for i in range(1, n + 1):
        country = rng.choices(countries, weights)[0]
        _, zones, locales, region, firsts, lasts = COUNTRIES[country]
        first, last = rng.choice(firsts), rng.choice(lasts)
        zone = rng.choice(zones)
        email = f"{_ascii(first)}.{_ascii(last)}".lower()
        while email in used_emails:
            email += str(rng.randrange(10))
        used_emails.add(email)
        if i % 12 == 0:  # some customers joined on this week's dates in earlier years
            since = as_of + timedelta(days=1 + i % 7)
            leap_day = (since.month, since.day) == (2, 29)
            since = since.replace(year=since.year - 1 - i % 9, day=28 if leap_day else since.day)
        else:
            since = first_day + timedelta(days=rng.randrange((as_of - first_day).days))
        has_x = rng.random() < 0.25
        quiet = rng.choice(QUIET_HOURS) if rng.random() < 0.25 else ("", "")
        tier = rng.choices(["standard", "plus", "premium"], [60, 25, 15])[0]
        rows.append({
            "external_id": f"cust-{i:04d}",
            "name": f"{first} {last}",
            "email": "" if rng.random() < 0.05 else f"{email}@{rng.choice(['example.com', 'example.org'])}",
            "phone": "" if rng.random() < 0.1 else _phone_text(rng, _mobile_number(rng, country)),
            "country": country,
            "x_user_id": str(rng.randrange(10**9, 10**18)) if has_x else "",
            "x_handle": f"{_ascii(first).lower()}_{i}" if has_x else "",
            "timezone": zone,
            "locale": rng.choice(locales),
            "tier": tier,
            "customer_since": since.isoformat(),
            "email_opt_in": _maybe(rng, 0.9, 0.05),
            "sms_opt_in": _maybe(rng, 0.65, 0.2),
            "social_opt_in": _maybe(rng, 0.6, 0.2) if has_x else "",
            "phone_opt_in": _maybe(rng, 0.3, 0.1),
            "marketing_opt_in": _maybe(rng, 0.72, 0.23),
            "preferred_channels": rng.choice(["", "", "email", "sms|email", "email|sms", "social|email"])
            if has_x else rng.choice(["", "", "email", "sms|email", "email|sms"]),
            "frequency": rng.choices(["", "any", "daily", "weekly", "monthly"], [30, 30, 8, 22, 10])[0],
            "quiet_start": quiet[0],
            "quiet_end": quiet[1],
            "do_not_contact": "true" if rng.random() < 0.02 else "",
            "attr.region": "us-west" if zone in US_WEST_ZONES else region,
            "attr.plan": rng.choice(PLANS) if tier == "standard" else rng.choice(PLANS[1:]),
            "attr.lifetime_value": f"{rng.lognormvariate(6, 1):.2f}",
            "attr.interests": "|".join(sorted(rng.sample(INTERESTS, rng.randrange(0, 4)))),
            "attr.nps": "" if rng.random() < 0.3 else str(rng.randrange(0, 11)),
        })  # fmt: skip
    return rows


def as_json(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as a JSON Lines object with native types."""
    out: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in row.items():
        if value == "":
            continue
        if key.startswith("attr."):
            name = key.removeprefix("attr.")
            if name in ("lifetime_value", "nps"):
                attributes[name] = float(value) if "." in value else int(value)
            else:
                attributes[name] = value
        elif key.endswith("_opt_in") or key == "do_not_contact":
            out[key] = value in ("yes", "true")
        elif key == "preferred_channels":
            out[key] = value.split("|")
        else:
            out[key] = value
    out["attributes"] = attributes
    return out


def bad_rows() -> list[tuple[str, dict[str, str]]]:
    """(defect, row): two good rows and one row per kind of defect."""
    good = {
        "external_id": "bad-demo-ok-1", "name": "Grace Hopper", "email": "grace.hopper@example.com",
        "phone": "+1 201-555-0147", "country": "US", "timezone": "America/New_York", "locale": "en-US",
        "tier": "premium", "customer_since": "2018-06-01", "email_opt_in": "yes", "frequency": "weekly",
    }  # fmt: skip
    cases: list[tuple[str, dict[str, str]]] = [
        ("good row", good),
        ("invalid phone", {"phone": "+1 555 12"}),
        ("invalid email", {"email": "grace.hopper@@example"}),
        ("unknown time zone", {"timezone": "Mars/Olympus_Mons"}),
        ("bad date", {"customer_since": "2021-02-30"}),
        ("date in the future", {"customer_since": "2999-01-01"}),
        ("missing external_id", {"external_id": ""}),
        ("duplicate external_id", {"external_id": "bad-demo-ok-1"}),
        ("overlong name", {"name": "A" * 250}),
        ("bad frequency", {"frequency": "hourly"}),
        ("bad quiet hours", {"quiet_start": "25:00", "quiet_end": "07:00"}),
        ("quiet hours half given", {"quiet_start": "22:00", "quiet_end": ""}),
        ("bad consent value", {"sms_opt_in": "maybe"}),
        ("unknown channel", {"preferred_channels": "sms|fax"}),
        ("bad locale", {"locale": "english please"}),
        ("unknown country", {"country": "XX"}),
        ("bad X handle", {"x_handle": "@not a handle"}),
        ("unparseable attribute JSON", {"attributes": "{region: eu-west"}),
        ("good row", {**good, "external_id": "bad-demo-ok-2", "name": "Alan Turing",
                      "email": "alan.turing@example.org", "phone": "07400 123456", "country": "GB",
                      "timezone": "Europe/London", "locale": "en-GB"}),  # fmt: skip
    ]
    rows = []
    for i, (defect, change) in enumerate(cases, start=1):
        rows.append((defect, {**good, "external_id": f"bad-demo-{i:02d}", **change}))
    return rows


def write_samples(out_dir: Path = HERE, as_of: date = AS_OF) -> None:
    rows = customer_rows(as_of)
    with open(out_dir / "customers.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with open(out_dir / "customers.jsonl", "w", encoding="utf-8") as f:
        for row in rows[:40]:
            f.write(json.dumps(as_json(row), ensure_ascii=False) + "\n")
    bad_columns = [*COLUMNS[:11], "email_opt_in", "sms_opt_in", "preferred_channels", "frequency",
                   "quiet_start", "quiet_end", "attributes", "favourite_colour"]  # fmt: skip
    with open(out_dir / "bad_customers.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, bad_columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for _, row in bad_rows():
            writer.writerow({**row, "favourite_colour": "teal"})
        f.write("bad-demo-ragged,Too Few Fields\n")  # a row with fewer fields than the header


def write_bulk_csv(path: Path, n: int, prefix: str = "bulk") -> Path:
    """``n`` valid synthetic customers (for the 100k import test and benchmark)."""
    zones = ["America/New_York", "Europe/Berlin", "Asia/Kathmandu", "Pacific/Chatham"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        header = ["external_id", "name", "email", "phone", "timezone", "tier", "customer_since",
                  "sms_opt_in", "marketing_opt_in", "frequency", "attr.region", "attr.nps"]  # fmt: skip
        writer.writerow(header)
        for i in range(n):
            writer.writerow([
                f"{prefix}-{i:07d}", f"Customer {i}", f"customer{i}@example.com",
                f"+1201{200 + i // 10000 % 800}{i % 10000:04d}", zones[i % 4],
                ("standard", "plus", "premium")[i % 3], f"{2010 + i % 15}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                ("yes", "no", "")[i % 3], ("yes", "no")[i % 2], ("any", "weekly")[i % 2],
                ("us-east", "eu-west", "ap-south")[i % 3], i % 11,
            ])  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF,
                        help="reference date: anniversaries are placed in the week after it")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    write_samples(args.out, args.as_of)


if __name__ == "__main__":
    main()
