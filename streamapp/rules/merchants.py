"""The merchant heuristic: today's costly "Netflix" search, plus a catalogue of card descriptors.

Everything here is a pure, picklable function of its arguments: it runs in a
process pool, never on the event loop.
"""

from __future__ import annotations

import re

UNKNOWN = "n/a"

# The legacy heuristic searched for "Netflix" this many times; its cost profile
# (CPU-bound, seconds per call) is kept on purpose and tuned by a setting.
_LEGACY = re.compile(r"Netflix")

# (merchant, pattern) in priority order. Patterns follow how card descriptors
# really look: processor prefixes (SQ *, PAYPAL *), truncations, store numbers.
CATALOGUE: tuple[tuple[str, str], ...] = (
    ("Netflix", r"\bnetflix"),
    ("Spotify", r"\bspotify"),
    ("Disney+", r"\bdisney\s*(plus|\+)"),
    ("Hulu", r"\bhulu\b"),
    ("YouTube Premium", r"\byoutube\s*(premium|music)|\bgoogle\s*\*\s*youtube"),
    ("Apple", r"\bapple\.com/bill|\bapple\s+services|\bitunes"),
    ("Amazon Prime Video", r"\bprime\s*video"),
    ("Amazon", r"\bamzn\s*mktp|\bamazon\.(com|co\.uk|de)|\bamzn\.com/bill|\bamazon\s+retail"),
    ("Amazon Web Services", r"\baws\b|\bamazon\s+web\s+services"),
    ("Google Cloud", r"\bgoogle\s*\*?\s*cloud|\bgcp\b"),
    ("Microsoft Azure", r"\bazure\b|\bmicrosoft\s*\*\s*azure"),
    ("Microsoft", r"\bmicrosoft\b|\bmsft\s*\*|\bxbox\b"),
    ("DigitalOcean", r"\bdigitalocean"),
    ("GitHub", r"\bgithub"),
    ("Uber Eats", r"\buber\s*\*?\s*eats"),
    ("Uber", r"\buber\s*\*?\s*trip|\buber\.com|\buber\s+bv\b|\buber\b"),
    ("Lyft", r"\blyft\b"),
    ("Bolt", r"\bbolt\.eu|\bbolt\s+ride"),
    ("DoorDash", r"\bdoordash|\bdd\s*\*\s*doordash"),
    ("Deliveroo", r"\bdeliveroo"),
    ("Whole Foods", r"\bwhole\s*foods|\bwfm\b"),
    ("Walmart", r"\bwal-?mart|\bwm\s+supercenter"),
    ("Costco", r"\bcostco"),
    ("Tesco", r"\btesco"),
    ("Kroger", r"\bkroger"),
    ("Trader Joe's", r"\btrader\s+joe"),
    ("Starbucks", r"\bstarbucks|\bsbux\b"),
    ("McDonald's", r"\bmcdonald'?s|\bmcd\s*\d"),
    ("Delta Air Lines", r"\bdelta\s+air|\bdelta\s+\d{10}"),
    ("United Airlines", r"\bunited\s+air|\bual\s*\*"),
    ("American Airlines", r"\bamerican\s+air|\baa\s+\d{10}"),
    ("Ryanair", r"\bryanair"),
    ("Lufthansa", r"\blufthansa"),
    ("Airbnb", r"\bairbnb"),
    ("Booking.com", r"\bbooking\.com"),
    ("Shell", r"\bshell\s+(oil|service|\d)"),
    ("PayPal", r"\bpaypal\s*\*"),
    ("Square merchant", r"\bsq\s*\*"),
)
_COMPILED = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in CATALOGUE)


def identify(description: str, repeat: int) -> str:
    """The merchant name for a card transaction description, or "n/a".

    The legacy search runs `repeat` times first (that is the cost clients know);
    its contract holds: a description containing "Netflix" answers "Netflix".
    """
    matched = False
    for _ in range(repeat):
        matched = _LEGACY.search(description) is not None
    if matched:
        return "Netflix"
    for name, pattern in _COMPILED:
        if pattern.search(description):
            return name
    return UNKNOWN
