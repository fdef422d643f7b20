"""The pure rules a user relies on: status forms, terms, word matching, snippets, previews."""

from __future__ import annotations

import duckdb
import pytest

from llm_proxy.errors import QueryError
from llm_proxy.store.search import Filters, parse_terms, prompt_preview, snippet, status_condition
from llm_proxy.store.textindex import vocabulary, words


@pytest.mark.parametrize("spec,matches,misses", [
    ("429", [429], [428, 500]),
    ("4xx", [400, 429, 499], [399, 500]),
    ("5XX", [500, 503], [499]),
    ("429,5xx", [429, 502], [400, 200]),
])
def test_status_forms(spec, matches, misses):
    sql, params = status_condition(spec)
    con = duckdb.connect()
    for code in matches + misses:
        hit = con.execute(f"SELECT {sql.replace('status_code', str(code))}", params).fetchone()[0]
        assert hit is (code in matches)


@pytest.mark.parametrize("spec", ["42", "4x", "600", "abc", "", ","])
def test_bad_status_forms(spec):
    with pytest.raises(QueryError, match="--status"):
        status_condition(spec)


def matches(term_text: str, body: str) -> bool:
    (term,) = parse_terms(term_text)
    return duckdb.connect().execute("SELECT regexp_matches(?, ?)",
                                    [body, term.regex()]).fetchone()[0]


@pytest.mark.parametrize("query,body,expected", [
    ("falcon", "Project FALCON launch", True),
    ("falcon", "falconry is old", False),
    ("falc*", "falconry is old", True),
    ('"project falcon"', '{"content":"the project\\nfalcon"}', True),  # JSON escape between
    ('"project falcon"', "project big falcon", False),
    ("café", "un café noir", True),
    ("email", "mail to [EMAIL] now", True),
    ("x", "a_x_b", True),  # underscores separate words
])
def test_word_and_phrase_matching(query, body, expected):
    assert matches(query, body) is expected


def test_terms_and_filters_round_trip():
    terms = parse_terms('Falcon "quarterly report" ref*')
    assert [(t.words, t.prefix) for t in terms] == [
        (("falcon",), False), (("quarterly", "report"), False), (("ref",), True)]
    f = Filters(text="x", user="u", since="7d")
    assert Filters.from_dict(f.to_dict()) == f
    assert f.merged(since="30d", until=None).since == "30d"


def test_index_and_query_tokenise_alike():
    text = 'Ünïcode "Straße"\\nnext—word 42x'
    assert sorted(words(text)) == vocabulary([__import__("pyarrow").array([text])]).to_pylist()


def test_snippet_centres_on_the_match_and_collapses_whitespace():
    body = "intro " * 30 + "the Project\\nFalcon plan " + "tail " * 30
    out = snippet([None, body], parse_terms('"project falcon"'), width=40)
    assert out.startswith("…") and out.endswith("…") and "Project Falcon plan" in out


def test_prompt_preview_reads_the_last_user_message():
    body = '{"messages":[{"role":"system","content":"sys"},{"role":"user","content":' \
           '[{"type":"text","text":"hello there"}]}]}'
    assert prompt_preview(body) == "hello there"
    assert prompt_preview('{"input":"embed me"}') == "embed me"
    assert prompt_preview("not json at all") == "not json at all"
