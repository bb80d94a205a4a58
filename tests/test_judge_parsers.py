"""Parsers of judge replies: what each reads, what it refuses, and the flagged fallback."""

from __future__ import annotations

import math

import pytest

from winnow.signals.judge_parsers import ParseError, make_parser


def top(pairs: dict[str, float]) -> list[dict]:
    """Log-probabilities of one generated position whose alternatives are ``pairs``."""
    first = next(iter(pairs))
    return [{"token": first, "logprob": pairs[first],
             "top_logprobs": [{"token": t, "logprob": v} for t, v in pairs.items()]}]


def test_first_number_reads_the_first_line_then_the_score_marker():
    parse = make_parser("first-number")
    assert parse("4.5\nThe answer is accurate.").value == 4.5
    assert parse(" 3 \nok").value == 3.0
    assert parse("The response is good.\nscore: 4\n").value == 4.0
    assert parse("Rating follows. Score: 2.5 out of 5").value == 2.5
    with pytest.raises(ParseError, match="no 'score:'"):
        parse("I cannot rate this.")
    with pytest.raises(ParseError, match="no number after"):
        parse("Good.\nscore: excellent")


def test_last_score_takes_the_last_one():
    parse = make_parser("last_score")  # underscores accepted
    assert parse("Score: 2 at first...\nOn reflection,\nScore: 5").value == 5.0
    with pytest.raises(ParseError):
        parse("a perfect answer")


def test_yes_no_prefers_logprobs_and_falls_back_to_the_word():
    parse = make_parser("yes-no")
    p = parse("Yes", top({"Yes": math.log(0.6), "No": math.log(0.2), " yes": math.log(0.1)}))
    assert p.value == pytest.approx(0.7 / 0.9)
    # the yes/no token need not be the first generated one
    lp = [{"token": " ", "logprob": -0.1, "top_logprobs": []},
          *top({"No": math.log(0.75), "Yes": math.log(0.25)})]
    assert parse(" No", lp).value == pytest.approx(0.25)
    assert parse("no, it is not grounded").value == 0.0
    assert parse("Yes.").value == 1.0
    with pytest.raises(ParseError):
        parse("Maybe")


def test_json_tags_reads_the_list_or_the_tag_fields():
    parse = make_parser("json-tags")
    reply = 'Tags:\n[{"tag": "cooking", "explanation": "x"}, {"tag": "recipe", "explanation": "y"}]'
    assert parse(reply).value == ["cooking", "recipe"]
    cut = '[{"tag": "math", "explanation": "a"}, {"tag": "alge'  # cut by max_tokens
    assert parse(cut).value == ["math"]
    assert parse("[]").value == []
    with pytest.raises(ParseError):
        parse("no tags here")


def test_digits_expectation_is_the_softmax_mean_over_the_digits():
    parse = make_parser("digits-expectation")
    lps = {"3": math.log(0.3), "1": math.log(0.1), "2": math.log(0.1), "4": math.log(0.1),
           "5": math.log(0.1), "6": math.log(0.1), "Hello": math.log(0.2), "12": -0.1}
    expected = (1 * .1 + 2 * .1 + 3 * .3 + 4 * .1 + 5 * .1 + 6 * .1) / 0.8
    assert parse("3", top(lps)).value == pytest.approx(expected)
    assert parse("3", top(lps)).fallback is None


def test_digits_expectation_fallback_is_flagged_or_refused():
    lps = top({"1": -1.0, "2": -2.0, "3": -3.0})
    with pytest.raises(ParseError, match="digits 456 not in the top 3"):
        make_parser("digits-expectation")("1", lps)
    with pytest.raises(ParseError, match="no log-probabilities"):
        make_parser("digits-expectation")("1", None)
    parsed = make_parser("digits-expectation", fallback=3.0)("1", lps)
    assert parsed.value == 3.0 and "456" in parsed.fallback
    three = make_parser("digits-expectation", digits="123")("1", lps)
    assert three.fallback is None and 1 < three.value < 2


def test_unknown_parsers_and_options_are_named():
    with pytest.raises(ValueError, match="unknown parser 'score'.*first-number"):
        make_parser("score")
    with pytest.raises(ValueError, match="digits-expectation"):
        make_parser("digits-expectation", fallbak=3.0)
    with pytest.raises(ValueError, match="distinct digit"):
        make_parser("digits-expectation", digits="1a")
