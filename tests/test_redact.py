"""The redaction engine: per-kind positives and look-alike negatives, JSON, policy, pseudonyms.

All values are fake: Luhn-valid test card numbers, checksum-valid IBANs, keys of the right
shape made of arbitrary characters, documentation IP ranges and example.com addresses.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from llm_proxy.audit import AuditConfig
from llm_proxy.errors import ConfigError
from llm_proxy.redact import (
    BUILTIN_KINDS,
    PII_KINDS,
    SECRET_KINDS,
    RedactionPolicy,
    Redactor,
    merge_counts,
)
from llm_proxy.redact.detectors import _LITERALS, lower_aligned, required_prefix
from llm_proxy.redact.policy import PSEUDONYM_SECRET_ENV


def make(**config: object) -> Redactor:
    return Redactor(RedactionPolicy.from_config(AuditConfig(**config)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return make()


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6\n"
       "ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkP\n"
       "-----END RSA PRIVATE KEY-----")

POSITIVES = [
    # secrets
    ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f", "sk-proj-Ab3dEf6hIj9kLm2nOp5q", "api_key"),
    ("OPENAI_API_KEY=sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6l", "sk-Ab3dEf6h", "api_key"),
    ("x-api-key: sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-Ab7cDe0fGh3iJk6lMn9oPq2rSt5u",
     "sk-ant-api03-Ab3", "api_key"),
    ("use AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q for maps", "AIzaSyA1b2C3d4E5", "api_key"),
    ("STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWD", "api_key"),
    ("pk_live_4eC39HqLyjWDarjtT1zdp7dc and rk_live_4eC39HqLyjWDarjtT1zdp7dc", "live_4eC39", "api_key"),
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("session ASIAY34FZKBOKMUTVV7A ok", "ASIAY34FZKBOKMUTVV7A", "aws_access_key"),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_key"),
    (f"the secret is {AWS_SECRET} ok", AWS_SECRET, "aws_secret_key"),
    ("GITHUB_TOKEN=ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c", "ghp_Ab3dEf6hIj9k", "token"),
    ("github_pat_11ABCDEFG0abcdefghijkl_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9oPq",
     "github_pat_11ABCDEFG0", "token"),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-123456789012", "token"),
    (f"Authorization: Bearer {JWT}", JWT, "jwt"),
    ("Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a3928", "token"),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l", "basic_auth"),
    (f"here:\n{PEM}\nthanks", "MIIEowIBAAKCAQEAu1SU1", "private_key"),
    ("password=hunter22!", "hunter22!", "password"),
    ('{"db": {"password": "correct horse"}} as text', "correct horse", "password"),
    ("Server=db;User Id=sa;Password=Tr0ub4dor&3;", "Tr0ub4dor&3", "password"),
    ("postgres://admin:s3cr3tPass@db.example.com:5432/app", "admin:s3cr3tPass", "url_credentials"),
    ("api_key=ab12cd34ef56gh78ij90", "ab12cd34ef56gh78ij90", "api_key"),
    ("client_secret: kliCnTfCXcMfCIHwkhrBKAublnQwJvjw", "kliCnTfCXcMfCIHwkhrB", "api_key"),
    # contact data and identifiers
    ("mail jane.doe+news@mail.example.org today", "jane.doe+news@mail.example.org", "email"),
    ("mailto:bob@example.com", "bob@example.com", "email"),
    ("call (415) 555-0132", "555-0132", "phone"),
    ("call +1 415 555 0132", "415 555 0132", "phone"),
    ("UK +44 20 7946 0958 or 020 7946 0958", "7946 0958", "phone"),
    ("mobile 07700 900123", "07700 900123", "phone"),
    ("Berlin +49 30 12345678 or 030 12345678", "12345678", "phone"),
    ("Paris 01 23 45 67 89 or 06.12.34.56.78", "45 67 89", "phone"),
    ("India +91 98765 43210 or 98765 43210", "98765 43210", "phone"),
    ("Phone: 4155550132", "4155550132", "phone"),
    ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111", "credit_card"),
    ("card 5500-0000-0000-0004", "5500-0000-0000-0004", "credit_card"),
    ("amex 3782 822463 10005", "3782 822463 10005", "credit_card"),
    ("bare 4012888888881881 here", "4012888888881881", "credit_card"),
    ("IBAN DE89 3704 0044 0532 0130 00", "3704 0044 0532", "iban"),
    ("IBAN GB29NWBK60161331926819", "GB29NWBK60161331926819", "iban"),
    ("SSN 123-45-6789", "123-45-6789", "ssn"),
    ("ssn: 123456789", "123456789", "ssn"),
    ("NI AB 12 34 56 C", "AB 12 34 56 C", "ni_number"),
    ("from 203.0.113.42:8080", "203.0.113.42", "ip_address"),
    ("v6 2001:db8:85a3::8a2e:370:7334 up", "2001:db8:85a3::8a2e:370:7334", "ip_address"),
    ("DOB: 1985-03-12", "1985-03-12", "date_of_birth"),
    ("born on March 3, 1985", "March 3, 1985", "date_of_birth"),
    ("Geburtsdatum: 12.03.1985", "12.03.1985", "date_of_birth"),
    ("date de naissance : 3 mars 1985", "3 mars 1985", "date_of_birth"),
    # names and addresses from context
    ("Name: Jane Smith", "Jane Smith", "person"),
    ("my name is Ludwig van Beethoven.", "Beethoven", "person"),
    ("Dear Mr. O'Brien, thanks", "O'Brien", "person"),
    ("Dear Priya,\nthanks", "Priya", "person"),
    ("Kind regards,\nMaria García", "Maria García", "person"),
    ("Hi Sarah, quick question", "Sarah", "person"),
    ("Barbara Nowak will join", "Barbara Nowak", "person"),
    ('"full_name": "Kwame Mensah"', "Kwame Mensah", "person"),
    ("I live at 221B Baker Street", "221B Baker Street", "address"),
    ("10 Downing St, London SW1A 2AA", "SW1A 2AA", "address"),
    ("1600 Pennsylvania Ave NW, Washington, DC 20500", "Pennsylvania Ave", "address"),
    ("Hauptstraße 5, 10115 Berlin", "Hauptstraße 5, 10115 Berlin", "address"),
    ("12 rue de la Paix, 75002 Paris", "rue de la Paix, 75002 Paris", "address"),
    ("Address: Flat 3, 45 Oak Road, Leeds", "Flat 3", "address"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), POSITIVES, ids=[p[2] for p in POSITIVES])
def test_positive(redactor: Redactor, text: str, secret: str, kind: str) -> None:
    out, counts = redactor.redact_text(text)
    assert secret not in out
    assert kind in counts, (out, counts)
    assert f"[{kind.upper()}]" in out


NEGATIVES = [
    "request 123e4567-e89b-42d3-a456-426614174000 failed",
    "fixed in 9fceb02d0ae598e95dc970b74767f19372d61af8 and 9fceb02",
    "Order #4829-1934 and ORD-2024-000123, ticket #415-555-0132, PO 0953733021",
    "upgrade to v2.14.0, Python 3.12.4, version 10.0.19045.2965, release 1.2.3.4",
    "at 2024-11-01T12:30:00Z, logged 2024-11-01 12:30:00.123, epoch 1730462400",
    "number 4532 0151 1283 0367 fails Luhn, 4111111111111112 too",
    "models gpt-4o-mini, gpt-4o-2024-08-06, claude-3-5-sonnet-20241022, o1-2024-12-17",
    "meeting on 2024-03-12 and deadline 12/03/2024",
    "it costs $1,299.99 and processed 12345678 rows in 345 ms",
    "color #ff5733 on localhost:8080, MAC 00:1A:2B:3C:4D:5E, std::vector and Foo::Bar::new()",
    "ISBN 978-3-16-148410-0, pi 3.14159265",
    "Machine Learning with Python on Google Cloud Platform and Claude Code",
    "Dear Customer, thanks.\nBest regards,\nSupport Team",
    "Hi Claude, summarise this. Will Python 4 happen? Hello World",
    "Name: String\nfilename: Report.pdf\nusername: Admin",
    "sk-... YOUR_API_KEY password=<password> token: ${TOKEN} max_tokens: 1024 key=value",
    "api_key: os.environ['OPENAI_API_KEY'] and password: str and pwd: /home/user",
    "Authorization: Bearer $TOKEN and Bearer token auth",
    "git clone git@github.com:org/repo.git and npm i @types/node@20.1.0",
    "the email address: [EMAIL] and phone [PHONE:1a2b3c]",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_negative(redactor: Redactor, text: str) -> None:
    assert redactor.redact_text(text) == (text, {})


def test_counts_per_kind(redactor: Redactor) -> None:
    text = "a@example.com, b@example.com and 203.0.113.7"
    out, counts = redactor.redact_text(text)
    assert out == "[EMAIL], [EMAIL] and [IP_ADDRESS]"
    assert counts == {"email": 2, "ip_address": 1}


def test_redacting_twice_changes_nothing(redactor: Redactor) -> None:
    out, _ = redactor.redact_text(" ".join(text for text, _, _ in POSITIVES))
    assert redactor.redact_text(out) == (out, {})


def test_json_nested_and_json_in_string(redactor: Redactor) -> None:
    args = json.dumps({"customer": {"email": "jane@example.com", "card": "4111 1111 1111 1111"}})
    body = json.dumps({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "my email is jane@example.com"},
            {"role": "assistant", "tool_calls": [
                {"type": "function", "function": {"name": "refund", "arguments": args}}]},
        ],
        "max_tokens": 100,
    })
    out, counts = redactor.redact_body(body)
    assert out is not None and "jane@example.com" not in out and "4111" not in out
    parsed = json.loads(out)
    inner = json.loads(parsed["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert inner == {"customer": {"email": "[EMAIL]", "card": "[CREDIT_CARD]"}}
    assert parsed["model"] == "gpt-4o-mini" and parsed["max_tokens"] == 100
    assert counts == {"email": 2, "credit_card": 1}
    assert out == json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))


def test_redact_json_returns_new_structure(redactor: Redactor) -> None:
    value = {"a": ["x", {"b": "call +44 20 7946 0958"}], "n": 1, "ok": True, "none": None}
    out, counts = redactor.redact_json(value)
    assert out == {"a": ["x", {"b": "call [PHONE]"}], "n": 1, "ok": True, "none": None}
    assert value["a"][1] == {"b": "call +44 20 7946 0958"}  # type: ignore[index]
    assert counts == {"phone": 1}


def test_json_keys_name_their_values(redactor: Redactor) -> None:
    out, counts = redactor.redact_json({
        "password": "hunter22", "api_key": "zq9XwV8uT7sR6qP5oN4m", "first_name": "Kwame",
        "name": "get_weather", "phone": "555 0132 999", "dob": "12/03/1985", "token": "short",
        "apiKey": "Ab3dEf6hIj9kLm2nOp5q", "email_address": "not an email",
    })
    assert out == {
        "password": "[PASSWORD]", "api_key": "[API_KEY]", "first_name": "[PERSON]",
        "name": "get_weather", "phone": "[PHONE]", "dob": "[DATE_OF_BIRTH]", "token": "short",
        "apiKey": "[API_KEY]", "email_address": "not an email",
    }
    assert counts == {"password": 1, "api_key": 2, "person": 1, "phone": 1, "date_of_birth": 1}


def test_repeated_strings_are_redacted_and_counted_every_time() -> None:
    """Scan results are remembered (traffic repeats system prompts): a repeat must still be
    redacted and counted, keys that were clean before must not hide a key that is not, and
    the memory held stays bounded however many distinct strings pass."""
    from llm_proxy.redact import engine

    r = make()
    prompt = "You are the support bot. Escalate to ops@example.com if the card 4111 1111 1111 1111 fails."
    body = json.dumps({"messages": [{"role": "system", "content": prompt},
                                    {"role": "user", "content": prompt}]})
    first = r.redact_body(body)
    for _ in range(3):
        assert r.redact_body(body) == first
    assert first[1] == {"email": 2, "credit_card": 2}
    assert "ops@example.com" not in (first[0] or "")
    # a key seen clean many times, then a key that is an e-mail address
    for _ in range(3):
        r.redact_json({"customer": "x"})
    out, counts = r.redact_json({"customer": "x", "jane.doe@example.com": "x"})
    assert out == {"customer": "x", "[EMAIL]": "x"} and counts == {"email": 1}
    # ... and a secret-only field still sees the full result of its own scanner
    assert r.mask_secrets(prompt)[1] == {}
    for i in range(3000):
        r.redact_text(f"unique text number {i} " + "filler words here " * 100)
    assert r._memo_chars <= engine._MEMO_MAX_CHARS
    assert r.redact_body(body) == first


def test_unchanged_json_body_is_returned_as_is(redactor: Redactor) -> None:
    body = '{ "model" : "gpt-4o",  "messages": [] }'
    assert redactor.redact_body(body) == (body, {})


def test_body_that_is_not_json_is_text(redactor: Redactor) -> None:
    assert redactor.redact_body('{"truncated": "mail a@example.com') == (
        '{"truncated": "mail [EMAIL]', {"email": 1})
    assert redactor.redact_body(None) == (None, {})


def test_query_strings_are_decoded(redactor: Redactor) -> None:
    out, counts = redactor.redact_body("?alt=json&key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
                                       "&email=jane%40example.com&q=hello+world", field="query")
    assert out == "?alt=json&key=[API_KEY]&email=[EMAIL]&q=hello+world"
    assert counts == {"api_key": 1, "email": 1}


def test_pseudonyms_are_stable_and_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PSEUDONYM_SECRET_ENV, raising=False)
    one = make(redact_pseudonyms=True, pseudonym_secret="s1")
    text = "jane@example.com wrote to JANE@example.com and bob@example.com"
    out, counts = one.redact_text(text)
    tokens = out.replace(" wrote to ", " ").replace(" and ", " ").split()
    assert tokens[0] == tokens[1] != tokens[2]
    assert all(t.startswith("[EMAIL:") and len(t) == len("[EMAIL:7f3a2c]") for t in tokens)
    assert counts == {"email": 3}
    assert one.redact_text(text) == (out, counts)
    other, _ = make(redact_pseudonyms=True, pseudonym_secret="s2").redact_text(text)
    assert other != out
    monkeypatch.setenv(PSEUDONYM_SECRET_ENV, "s1")
    assert make(redact_pseudonyms=True).redact_text(text)[0] == out
    assert one.redact_text(out) == (out, {})  # pseudonyms are placeholders, not findings


def test_pseudonyms_without_secret_name_both_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PSEUDONYM_SECRET_ENV, raising=False)
    with pytest.raises(ConfigError) as err:
        make(redact_pseudonyms=True)
    assert "pseudonym_secret" in str(err.value) and PSEUDONYM_SECRET_ENV in str(err.value)


def test_pseudonym_secret_is_not_in_repr() -> None:
    policy = RedactionPolicy.from_config(AuditConfig(redact_pseudonyms=True,
                                                     pseudonym_secret="topsecret"))
    assert "topsecret" not in repr(policy)


def test_allow_list() -> None:
    r = make(redact_allow=["support@mycompany.com", " 203.0.113.1 "])
    out, counts = r.redact_text("write to Support@MyCompany.com or me@example.com from 203.0.113.1")
    assert out == "write to Support@MyCompany.com or [EMAIL] from 203.0.113.1"
    assert counts == {"email": 1}


def test_custom_rules() -> None:
    r = make(redact_rules={"employee_id": r"EMP-\d{6}", "ticket": r"ticket (?P<value>T\d+)"})
    out, counts = r.redact_text("EMP-123456 opened ticket T42")
    assert out == "[EMPLOYEE_ID] opened ticket [TICKET]"
    assert counts == {"employee_id": 1, "ticket": 1}


def test_custom_rule_errors_name_the_rule() -> None:
    with pytest.raises(ConfigError, match="redact_rules.broken"):
        make(redact_rules={"broken": "(unclosed"})
    with pytest.raises(ConfigError, match="rule name"):
        make(redact_rules={"bad name": "x"})


def test_disabled_kinds_and_kind_subset() -> None:
    text = "mail a@example.com from 203.0.113.9 with sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"
    no_ip = make(redact_disabled_kinds=["ip_address"])
    assert no_ip.redact_text(text)[1] == {"email": 1, "api_key": 1}
    only_email = make(redact_kinds=["email"])
    assert only_email.redact_text(text)[1] == {"email": 1, "api_key": 1}  # secrets stay on


def test_secrets_only_when_pii_is_off() -> None:
    r = make(redact_pii=False)
    out, counts = r.redact_text("a@example.com key sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w pw: hunter22")
    assert out == "a@example.com key [API_KEY] pw: hunter22"
    assert counts == {"api_key": 1}
    assert r.policy.kinds == frozenset(SECRET_KINDS)


def test_unknown_kinds_are_config_errors_listing_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        make(redact_kinds=["emails"])
    assert "'emails'" in str(err.value) and "credit_card" in str(err.value)
    with pytest.raises(ConfigError, match="redact_disabled_kinds"):
        make(redact_disabled_kinds=["nope"])


def test_secret_kinds_cannot_be_disabled() -> None:
    with pytest.raises(ConfigError, match="always redacted"):
        make(redact_disabled_kinds=["api_key"])


def test_unknown_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="request_body"):
        make(redact_fields={"body": "drop"})


def test_field_modes() -> None:
    r = make(redact_fields={"response_body": "drop", "request_headers": "keep"})
    assert r.field_mode("response_body") == "drop"
    assert r.field_mode("request_body") == "redact"
    assert r.redact_body("a@example.com", field="response_body") == (None, {})
    headers = '{"x-user": "a@example.com", "x-token": "Bearer 9f8e7d6c5b4a39281706f5e4"}'
    out, counts = r.redact_body(headers, field="request_headers")
    assert out is not None and "a@example.com" in out and "9f8e7d6c" not in out
    assert counts == {"token": 1}


def test_metadata_only_drops_bodies_not_headers() -> None:
    r = make(metadata_only=True)
    assert r.redact_body('{"a": 1}', field="request_body") == (None, {})
    assert r.redact_body("x", field="response_body") == (None, {})
    assert r.redact_body("a@example.com", field="error_message") == ("[EMAIL]", {"email": 1})


def test_mask_secrets_ignores_policy() -> None:
    r = make(redact_pii=True)
    out, counts = r.mask_secrets("a@example.com token=ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c")
    assert out == "a@example.com token=[TOKEN]"
    assert counts == {"token": 1}


def test_merge_counts() -> None:
    assert merge_counts({"email": 1}, {}, {"email": 2, "phone": 1}) == {"email": 3, "phone": 1}
    assert merge_counts() == {}


def test_kind_catalogue() -> None:
    assert set(SECRET_KINDS) | set(PII_KINDS) == set(BUILTIN_KINDS)
    assert not set(SECRET_KINDS) & set(PII_KINDS)


def test_default_redactor_builds_fast() -> None:
    start = time.perf_counter()
    make()
    assert time.perf_counter() - start < 0.5  # well under 100 ms unloaded; slack for busy CI


def test_prompt_sized_text_is_fast(redactor: Redactor) -> None:
    prompt = ("Please summarise the following report for the quarterly review. " * 32)[:2048]
    redactor.redact_text(prompt)
    start = time.process_time()
    for _ in range(50):
        redactor.redact_text(prompt)
    per_prompt = (time.process_time() - start) / 50
    assert per_prompt < 0.002  # 0.1 ms target; the benchmark measures it, this catches blowups


def test_required_prefix_is_conservative() -> None:
    assert required_prefix(r"sk-[A-Za-z0-9]{20,}") == "sk-"
    assert required_prefix(r"pass(?:w(?:or)?d|phrase)") == "pass"
    assert required_prefix("ab*c") == "a"  # b may be absent
    assert required_prefix("ab?") == "a"
    assert required_prefix("a{2}") == ""
    assert required_prefix(r"\d+x") == ""
    assert required_prefix("[ab]c") == ""
    assert required_prefix("ab|cd") == ""  # a top-level alternative may match without "ab"
    assert required_prefix("[|]x|y") == ""
    assert required_prefix(r"a\|b") == "a"
    assert required_prefix(re.compile("abc", re.IGNORECASE)) == ""
    assert required_prefix("(?i)abc") == ""


def test_substring_gate_changes_no_finding() -> None:
    """The needle test only skips regex calls that could not match: the findings over every
    positive and negative sample of the test lists are those of the ungated regexes."""
    scanner = Redactor(RedactionPolicy.from_config(AuditConfig()))._full
    texts = [p[0] for p in POSITIVES] + NEGATIVES
    texts += [f"x {t} y" for t in texts] + [t.upper() for t in texts]
    gated = 0
    for lit in _LITERALS:
        assert lit.needle, lit.pattern.pattern  # every literal pattern has a fixed start
        for text in texts:
            haystack = lower_aligned(text) if lit.on_lower else text
            matches = list(lit.pattern.finditer(haystack))
            if lit.needle not in haystack:
                gated += 1
                assert not matches, (lit.pattern.pattern, text)
            for m in matches:
                assert m.group().startswith(lit.needle)
    assert gated > len(texts)  # the gate does skip work
    assert scanner.find("write to jane.doe@example.com")  # and detection still runs
