"""A labelled corpus of FAKE sensitive values and look-alike negatives, generated from a seed.

Every value is format-valid and invented: Luhn-valid card numbers, mod-97-valid IBANs, keys of
the right shape made of random characters, names drawn from lists, fictional addresses. None
of it is real data. ``positives()`` yields one sample per kind and template; ``negatives()``
yields text that must come out unchanged (UUIDs, SHAs, order numbers, versions, timestamps,
non-Luhn numbers, model ids, capitalised phrases, placeholders …); ``prompts()`` yields
prompt-like text (~2 KiB, mostly clean) for throughput.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["SECRET_KINDS_SET", "Sample", "chat_bodies", "negatives", "positives", "prompts"]

SECRET_KINDS_SET = frozenset({"private_key", "jwt", "url_credentials", "basic_auth",
                              "aws_access_key", "api_key", "token", "aws_secret_key", "password"})


@dataclass(frozen=True, slots=True)
class Sample:
    kind: str | None  # expected kind; None for a negative
    text: str
    value: str = ""  # what must not survive redaction


B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"

def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


GIVEN = _words("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
         "Richard Susan Joseph Jessica Thomas Sarah Christopher Karen Daniel Lisa Matthew Nancy "
         "Anthony Betty Steven Sandra Andrew Ashley Joshua Emily Kevin Donna Brian Michelle "
         "George Carol Timothy Amanda Jason Melissa Jeffrey Deborah Ryan Stephanie Jacob Rebecca "
         "Nicholas Laura Eric Helen Jonathan Sharon Stephen Cynthia Larry Kathleen Justin Amy "
         "Scott Angela Brandon Anna Benjamin Ruth Samuel Brenda Gregory Pamela Alexander Nicole "
         "Patrick Katherine Jack Samantha Dennis Christine Jerry Emma Tyler Catherine Aaron Olivia "
         "Sophie Lukas Hannah Felix Lena Jonas Marie Pierre Camille Antoine Chloé Lucas Manon "
         "Javier Lucía Alejandro Sofía Giulia Marco Francesca Luca Priya Rahul Ananya Arjun "
         "Wei Mei Hiroshi Yuki Minjun Seoyeon Olga Dmitri Fatima Omar Ahmed Aisha Chinedu Ngozi "
         "Kwame Ama Mehmet Ayşe Piotr Agnieszka Lars Ingrid Sven Astrid João Beatriz")
SURNAMES = tuple(s.replace("_", " ") for s in _words("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
            "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
            "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright "
            "Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell "
            "Mitchell Carter Roberts Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker "
            "Dubois Lefebvre Moreau Laurent Girard Rossi Russo Ferrari Esposito Bianchi "
            "Fernández Gómez Díaz Patel Sharma Singh Kumar Gupta Wang Zhang Chen Liu Tanaka "
            "Suzuki Kim Park Ivanov Petrov Kowalski Nowak Yilmaz Kaya Okafor Mensah Hansen "
            "Johansson Silva Santos O'Brien McDonald van_der_Berg"))
CITIES_US = (("Springfield", "IL", "62701"), ("Austin", "TX", "78701"), ("Denver", "CO", "80202"),
             ("Portland", "OR", "97205"), ("Boston", "MA", "02108"), ("Seattle", "WA", "98101"))
STREETS = ("Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Baker",
           "Church", "Victoria", "Mill", "Park", "Sunset", "Highland", "Chestnut", "Willow")
TYPES = ("Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Boulevard", "Way",
         "Court", "Place")
UK = (("London", "SW1A 2AA"), ("Manchester", "M1 1AE"), ("Leeds", "LS1 4AP"),
      ("Bristol", "BS1 5TR"), ("Edinburgh", "EH1 1YZ"))
DE = (("Berlin", "10115"), ("München", "80331"), ("Hamburg", "20095"), ("Köln", "50667"))
DE_STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Lindenallee",
              "Goethestraße", "Marktplatz", "Berliner Straße", "Am Rosengarten")
FR = (("Paris", "75002"), ("Lyon", "69002"), ("Marseille", "13001"), ("Bordeaux", "33000"))
FR_STREETS = ("rue de la Paix", "avenue des Champs", "boulevard Saint-Michel", "rue Victor Hugo",
              "place de la République", "rue du Faubourg Montmartre", "allée des Tilleuls")


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return _rand(rng, string.digits, n)


def _luhn_complete(partial: str) -> str:
    for check in "0123456789":
        number = partial + check
        total = sum(int(d) if i % 2 == 0 else (2 * int(d) - 9 if int(d) > 4 else 2 * int(d))
                    for i, d in enumerate(reversed(number)))
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable")


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice((("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                                 ("37", 15), ("6011", 16), ("4", 13)))
    number = _luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))
    sep = rng.choice((" ", "-", ""))
    if length == 15:
        parts = [number[:4], number[4:10], number[10:]]
    elif length == 13:
        return number
    else:
        parts = [number[i : i + 4] for i in range(0, 16, 4)]
    return sep.join(parts)


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice((
        ("DE", _digits(rng, 18)), ("GB", "NWBK" + _digits(rng, 14)), ("FR", _digits(rng, 23)),
        ("ES", _digits(rng, 20)), ("NL", "ABNA" + _digits(rng, 10)),
        ("IT", "X" + _digits(rng, 22)),
    ))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _ni(rng: random.Random) -> str:
    first, second = rng.choice("ABCEGHJKLMNOPRSTWXYZ"), rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        first, second = "A", "B"
    d = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {suffix}"
    return f"{first}{second}{d}{suffix}"


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return f"2001:db8:{groups[2]}::{groups[7]}"


def _phone(rng: random.Random) -> str:
    def d(n: int) -> str:
        return _digits(rng, n)

    area = str(rng.randint(201, 989))
    return rng.choice((
        f"({area}) 555-{d(4)}", f"{area}-555-{d(4)}", f"+1 {area} 555 {d(4)}",
        f"{area}.555.{d(4)}", f"+44 20 7946 {d(4)}", f"020 7946 {d(4)}", f"07700 900{d(3)}",
        f"+44 7700 900{d(3)}", f"+49 30 {d(8)}", f"030 {d(8)}", f"0151 {d(8)}",
        f"+49 (0)89 {d(7)}", f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
        f"01 {d(2)} {d(2)} {d(2)} {d(2)}", f"06.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
        f"+91 98{d(3)} {d(5)}", f"9{d(4)} {d(5)}", f"011-{d(4)} {d(4)}",
    ))


def _name(rng: random.Random) -> str:
    return f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}"


def _address(rng: random.Random) -> str:
    style = rng.randrange(5)
    if style == 0:
        city, state, zip_code = rng.choice(CITIES_US)
        return (f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(TYPES)}, "
                f"{city}, {state} {zip_code}")
    if style == 1:
        city, postcode = rng.choice(UK)
        return f"{rng.randint(1, 250)} {rng.choice(STREETS)} {rng.choice(TYPES)}, {city} {postcode}"
    if style == 2:
        city, plz = rng.choice(DE)
        return f"{rng.choice(DE_STREETS)} {rng.randint(1, 120)}, {plz} {city}"
    if style == 3:
        city, cp = rng.choice(FR)
        return f"{rng.randint(1, 120)} {rng.choice(FR_STREETS)}, {cp} {city}"
    return f"{rng.randint(1, 999)}{rng.choice(('', 'B', 'A'))} {rng.choice(STREETS)} Street"


def _dob(rng: random.Random) -> tuple[str, str]:
    y, m, d = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    months = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
    fr_months = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre")
    label, value = rng.choice((
        ("DOB: ", f"{y}-{m:02d}-{d:02d}"), ("Date of birth: ", f"{d:02d}/{m:02d}/{y}"),
        ("born on ", f"{months[m - 1]} {d}, {y}"), ("Geburtsdatum: ", f"{d:02d}.{m:02d}.{y}"),
        ("date de naissance : ", f"{d} {fr_months[m - 1]} {y}"),
        ("Birthday: ", f"{d} {months[m - 1]} {y}"), ("d.o.b. ", f"{m:02d}/{d:02d}/{y}"),
    ))
    return label, value


def _labelled_dob(rng: random.Random) -> tuple[str, str]:
    label, value = _dob(rng)
    return f"Patient {label}{value}.", value


def _jwt(rng: random.Random) -> str:
    def seg(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    payload = {"sub": _digits(rng, 10), "name": "Test User", "iat": rng.randint(1_600_000_000,
                                                                               1_800_000_000)}
    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(payload)}.{_rand(rng, B64URL, 43)}"


def _pem(rng: random.Random) -> str:
    body = "\n".join(_rand(rng, B64, 64) for _ in range(rng.randint(3, 8)))
    kind = rng.choice(("RSA ", "EC ", "", "OPENSSH "))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def _password(rng: random.Random) -> str:
    return _rand(rng, B62 + "!#%^&*", rng.randint(8, 20))


Maker = Callable[[random.Random], tuple[str, str]]  # -> (text, value)


def _t(templates: tuple[str, ...], make: Callable[[random.Random], str]) -> Maker:
    def build(rng: random.Random) -> tuple[str, str]:
        value = make(rng)
        return rng.choice(templates).format(v=value), value

    return build


_MAKERS: dict[str, list[Maker]] = {
    "email": [_t(("Please email {v} about the invoice.", "contact: {v}", "From: Jo <{v}>",
                  "cc {v}; thanks", '{{"user": "{v}"}}'),
                 lambda r: f"{r.choice(GIVEN).lower()}.{r.choice(SURNAMES).lower()}"
                           f"{r.choice(('', str(r.randint(1, 99)), '+news'))}@"
                           f"{r.choice(('example.com', 'mail.example.org', 'corp.example.co.uk', 'uni.example.edu'))}")],
    "phone": [_t(("Call me at {v}.", "Phone: {v}", "reach me on {v} tomorrow", "Tel {v}"), _phone)],
    "credit_card": [_t(("My card is {v}, exp 12/27.", "card number: {v}", "charge {v} please"),
                       _card)],
    "iban": [_t(("IBAN: {v}", "Please wire it to {v} today.", "account {v}"), _iban)],
    "ssn": [_t(("SSN: {v}", "my social security number is {v}", "ssn {v} on file"), _ssn)],
    "ni_number": [_t(("NI number: {v}", "National Insurance {v}."), _ni)],
    "ip_address": [_t(("request from {v}", "server {v} is down", "ip={v}"), _ipv4),
                   _t(("client {v} connected", "addr {v}"), _ipv6)],
    "date_of_birth": [_labelled_dob],
    "person": [_t(("Dear {v},\nthanks for your message.", "My name is {v}.", "Name: {v}",
                   "Kind regards,\n{v}", "{v} will join the call.", "I spoke with {v} today.",
                   "Best,\n{v}\nSenior Engineer"), _name)],
    "address": [_t(("Ship it to {v}.", "I live at {v}", "Address: {v}",
                    "Our office is at {v}, come by."), _address)],
    "api_key": [
        _t(("OPENAI_API_KEY={v}", "use key {v} for the call", '"api_key": "{v}"'),
           lambda r: r.choice(("sk-", "sk-proj-")) + _rand(r, B62, r.choice((48, 64)))),
        _t(("ANTHROPIC_API_KEY={v}", "x-api-key: {v}"),
           lambda r: "sk-ant-api03-" + _rand(r, B64URL, 93) + "AA"),
        _t(("key={v}", "Google key {v}"), lambda r: "AIza" + _rand(r, B64URL, 35)),
        _t(("stripe {v}", "STRIPE_SECRET={v}"),
           lambda r: r.choice(("sk_live_", "rk_live_", "pk_live_")) + _rand(r, B62, 24)),
        _t(("api_key={v}", "client_secret: {v}"), lambda r: _rand(r, B62, 32)),
    ],
    "token": [
        _t(("GITHUB_TOKEN={v}", "git clone https://{v}@github.com/o/r"),
           lambda r: r.choice(("ghp_", "gho_", "ghs_", "ghu_")) + _rand(r, B62, 36)),
        _t(("token {v}",), lambda r: "github_pat_" + _rand(r, B62, 22) + "_" + _rand(r, B62, 59)),
        _t(("SLACK_BOT_TOKEN={v}",),
           lambda r: f"xoxb-{_digits(r, 12)}-{_digits(r, 13)}-{_rand(r, B62, 24)}"),
        _t(("Authorization: Bearer {v}", "-H 'Authorization: Bearer {v}'"),
           lambda r: _rand(r, B62 + "-._", 40)),
        _t(("auth_token={v}",), lambda r: _rand(r, B62, 40)),
    ],
    "aws_access_key": [_t(("aws_access_key_id = {v}", "key id {v}"),
                          lambda r: r.choice(("AKIA", "ASIA")) + _rand(r, string.ascii_uppercase + string.digits, 16))],
    "aws_secret_key": [_t(("aws_secret_access_key = {v}", "the secret is {v} ok", "{v}"),
                          lambda r: _rand(r, B64, 40))],
    "jwt": [_t(("Authorization: Bearer {v}", "id_token={v}", "jwt: {v}"), _jwt)],
    "private_key": [_t(("Here is the key:\n{v}\nthanks", "{v}"), _pem)],
    "password": [_t(("password={v}", "DB_PASSWORD: {v}", '{{"password": "{v}"}}',
                     "Server=db;User Id=sa;Password={v};", "pwd: {v}"), _password)],
    "url_credentials": [_t(("DATABASE_URL=postgres://{v}@db.example.com:5432/app",
                            "mongodb+srv://{v}@cluster0.example.net/test",
                            "curl https://{v}@api.example.com/v1"),
                           lambda r: f"{r.choice(GIVEN).lower()}:{_password(r).replace('%', '')}")],
    "basic_auth": [_t(("Authorization: Basic {v}",),
                      lambda r: base64.b64encode(f"{r.choice(GIVEN).lower()}:{_password(r)}".encode()).decode())],
}


def positives(seed: int = 7, per_maker: int = 150) -> Iterator[Sample]:
    """Labelled positives: ``per_maker`` samples from every generator of every kind."""
    rng = random.Random(seed)
    for kind, makers in _MAKERS.items():
        for make in makers:
            for _ in range(per_maker):
                text, value = make(rng)
                yield Sample(kind, text, value)


def _uuid(rng: random.Random) -> str:
    h = _rand(rng, "0123456789abcdef", 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _non_luhn16(rng: random.Random) -> str:
    while True:
        number = rng.choice("3456") + _digits(rng, 15)
        total = sum(int(d) if i % 2 == 0 else (2 * int(d) - 9 if int(d) > 4 else 2 * int(d))
                    for i, d in enumerate(reversed(number)))
        if total % 10:
            return rng.choice((number, " ".join(number[i : i + 4] for i in range(0, 16, 4))))


_NEGATIVE_MAKERS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"request id {_uuid(r)} failed",
    lambda r: f"fixed in commit {_rand(r, '0123456789abcdef', 40)}",
    lambda r: f"see {_rand(r, '0123456789abcdef', 7)} and {_rand(r, '0123456789abcdef', 12)}",
    lambda r: f"Order #{_digits(r, 4)}-{_digits(r, 4)} shipped",
    lambda r: f"order ORD-{r.randint(2019, 2026)}-{_digits(r, 6)} is late",
    lambda r: f"invoice INV-{_digits(r, 6)} and PO {_digits(r, 10)}",
    lambda r: f"ticket #{_digits(r, 3)}-{_digits(r, 3)}-{_digits(r, 4)} was closed",
    lambda r: f"upgrade to v{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}",
    lambda r: f"Python {r.randint(2, 3)}.{r.randint(0, 13)}.{r.randint(0, 12)} and node 20.11.1",
    lambda r: f"version {r.randint(1, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}-rc{r.randint(1, 5)}",
    lambda r: f"at {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
              f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z",
    lambda r: f"logged {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} "
              f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{_digits(r, 3)}",
    lambda r: f"epoch {r.randint(1_600_000_000, 1_800_000_000)} ms {r.randint(1_600_000_000_000, 1_800_000_000_000)}",
    lambda r: f"number {_non_luhn16(r)} is not a card",
    lambda r: r.choice(("use gpt-4o-mini", "model gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022",
                        "claude-3-opus-20240229 is slower", "gemini-1.5-pro-002",
                        "mistral-large-2407", "llama-3.1-70b-instruct", "o1-preview-2024-09-12",
                        "text-embedding-3-large", "claude-sonnet-4-20250514")),
    lambda r: f"the meeting on {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} moved",
    lambda r: f"deadline {r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(2019, 2026)}",
    lambda r: f"it costs ${r.randint(1, 9)},{_digits(r, 3)}.{_digits(r, 2)} per month",
    lambda r: f"processed {r.randint(1_000_000, 99_999_999)} rows in {r.randint(1, 999)} ms",
    lambda r: f"color #{_rand(r, '0123456789abcdef', 6)} on localhost:{r.randint(1024, 65535)}",
    lambda r: f"ISBN 978-{r.randint(0, 9)}-{_digits(r, 2)}-{_digits(r, 6)}-{r.randint(0, 9)}",
    lambda r: r.choice(("Machine Learning basics", "New York City guide", "Pull Request review",
                        "United States Postal Service", "Claude Code helps", "Hello World app",
                        "Dear Customer, thanks", "Thanks,\nThe Team", "Dear Hiring Manager,",
                        "Best regards,\nSupport Team", "Hi there, quick question",
                        "Name: String", "name: Required", "filename: Report.pdf",
                        "Will Python 4 happen?", "Grace Hopper Conference", "Stack Overflow",
                        "Google Cloud Platform", "Visual Studio Code", "Amazon Web Services",
                        "Hi Claude, summarise this.", "Microsoft Teams", "Natural Language",
                        "Jordan River", "Julia Language", "Ruby Gems", "Apache Kafka")),
    lambda r: r.choice(("sk-...", "YOUR_API_KEY", "password=<password>", "token: ${TOKEN}",
                        "api_key: os.environ['OPENAI_API_KEY']", "password: str",
                        "the key insight is", "keyboard=us", "max_tokens: 1024",
                        "token_count=512", "secret sauce", "Bearer token auth",
                        "Authorization: Bearer $TOKEN", "[EMAIL] and [PHONE:1a2b3c]",
                        "password is required", "pwd: /home/user", "key=value")),
    lambda r: f"pi is {r.randint(3, 3)}.{_digits(r, 8)} and e is 2.71828",
    lambda r: f"SKU {_digits(r, 8)} shipped in {r.randint(1, 9)} boxes",
    lambda r: f"error at line {r.randint(1, 9999)}, column {r.randint(1, 200)}",
    lambda r: f"base64 {_rand(r, B62, 12)}== and hash {_rand(r, '0123456789abcdef', 64)}",
    lambda r: f"std::vector<int> v; auto it = v.begin(); Foo::Bar::{r.choice(('baz', 'new'))}()",
    lambda r: f"at 12:{r.randint(10, 59)}:{r.randint(10, 59)} the MAC 00:1A:2B:{r.randint(10, 99)}:4D:5E",
)


def negatives(seed: int = 11, per_maker: int = 60) -> Iterator[Sample]:
    """Look-alike negatives: nothing in them may be redacted."""
    rng = random.Random(seed)
    for make in _NEGATIVE_MAKERS:
        for _ in range(per_maker):
            yield Sample(None, make(rng))


_WORDS = _words("the a of to and in is for that it on with as this be are by from at or an have "
          "was can will not your all has more our which their if about use data model function "
          "return value list error please explain summarize following code class method test "
          "result user request response should could would into than then also each between "
          "table query performance system review write short summary customer feedback improve "
          "report analysis section example step first next because however while using python "
          "service database latency cost tokens context output input format json field string "
          "number issue release version feature team project deadline meeting question answer")
_CODE = ('def handler(event, context):\n    items = json.loads(event["body"])\n'
         '    for i, item in enumerate(items[:10]):\n'
         '        print(f"{i}: {item[\'name\']} -> {item.get(\'price\', 0):.2f}")\n'
         '    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}}\n')
_SQL = "SELECT user_id, COUNT(*) AS n FROM events WHERE ts > now() - INTERVAL '7 days' GROUP BY 1;\n"


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), str(rng.randint(2, 2025)))
    if rng.random() < 0.15:
        words.insert(rng.randrange(len(words)), rng.choice(("API", "JSON", "SQL", "Python",
                                                            "GPT-4o", "Claude", "AWS", "Q3")))
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", ":"))


def prompts(seed: int = 5, count: int = 400, size: int = 2048, pii_rate: float = 0.1) -> list[str]:
    """Prompt-like text of about ``size`` characters: prose, some code and SQL, rare PII."""
    rng = random.Random(seed)
    pii = [s.text for s in positives(seed=seed, per_maker=3)]
    out = []
    for _ in range(count):
        parts: list[str] = []
        while sum(map(len, parts)) < size:
            roll = rng.random()
            if roll < 0.06:
                parts.append("\n```python\n" + _CODE + "```\n")
            elif roll < 0.09:
                parts.append("\n" + _SQL)
            elif roll < 0.09 + pii_rate / 10:
                parts.append(" " + rng.choice(pii) + " ")
            else:
                parts.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 4))) + "\n")
        out.append("".join(parts)[:size])
    return out


def chat_bodies(seed: int = 9, count: int = 200) -> list[tuple[str, list[str]]]:
    """OpenAI-style request bodies with PII in messages and in tool-call arguments.

    Returns (body, sensitive values) pairs; the tool call (``messages[3]``) carries its
    ``arguments`` as JSON in a string.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        email = f"{rng.choice(GIVEN).lower()}@example.com"
        card = _card(rng)
        name = _name(rng)
        args = json.dumps({"customer": {"name": name, "email": email}, "card": card,
                           "note": f"call {_phone(rng)}"})
        body = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a billing assistant. "
                 + " ".join(_sentence(rng) for _ in range(6))},
                {"role": "user", "content": " ".join(_sentence(rng) for _ in range(8))},
                {"role": "user", "content": f"Hi, I'm writing about order 4411. My email is {email}."},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": f"call_{_rand(rng, B62, 24)}", "type": "function",
                    "function": {"name": "refund", "arguments": args}}]},
            ],
            "temperature": 0.2,
            "max_tokens": 512,
        }
        out.append((json.dumps(body), [email, card, name]))
    return out
