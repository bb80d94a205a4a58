"""Model-free signals: text length in characters, words and tokens, language identification
(py3langid, offline) and Gopher's repetition and quality values, each checked against an
independent computation on the real mixed pool; language and repetition filters in a
recipe."""

from __future__ import annotations

import json
import re
import socket
import unicodedata
from collections import Counter

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.data.pool import Pool, Source, last_exchange
from winnow.recipes.recipe import Recipe
from winnow.recipes.runner import run_recipe
from winnow.registry import get_signal
from winnow.store import Store

# Gopher, table A1, and datatrove's stop words
REPETITION = {"dup_para_frac": 0.3, "dup_para_char_frac": 0.2, "dup_line_frac": 0.3,
              "dup_line_char_frac": 0.2, "top_2_gram_char_frac": 0.2,
              "top_3_gram_char_frac": 0.18, "top_4_gram_char_frac": 0.16,
              "dup_5_gram_char_frac": 0.15, "dup_6_gram_char_frac": 0.14,
              "dup_7_gram_char_frac": 0.13, "dup_8_gram_char_frac": 0.12,
              "dup_9_gram_char_frac": 0.11, "dup_10_gram_char_frac": 0.10}
STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with"}


@pytest.fixture(scope="module")
def mixed(shared_data) -> Pool:
    return load_pool(shared_data / "mixed_pool.jsonl")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("prefilter-cache"))


def _pool(texts: list[str]) -> Pool:
    convs = [[{"role": "user", "content": "Say something."},
              {"role": "assistant", "content": t}] for t in texts]
    return Pool([f"t{i}" for i in range(len(texts))], convs, [{}] * len(texts),
                Source("mem", "jsonl", "alpaca"))


def _sample(pool: Pool, step: int) -> Pool:
    """Every ``step``-th example of each domain."""
    seen: Counter = Counter()
    rows = []
    for i, d in enumerate(pool.extra["domain"]):
        if seen[d] % step == 0:
            rows.append(i)
        seen[d] += 1
    return pool.subset(rows)


# --- lengths -------------------------------------------------------------------------


def test_lengths_in_characters_words_and_tokens(mixed, store):
    from transformers import AutoTokenizer

    from winnow.models.causal_lm import ensure_default_model

    pool = _sample(mixed, 25)
    responses = [last_exchange(c)[1] for c in pool.conversations]
    cols = {u: get_signal("text_length", text="response", unit=u)(pool, store)
            for u in ("chars", "words", "tokens")}
    assert cols["chars"]["length"].tolist() == [len(r) for r in responses]
    cjk = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
    words = [len(cjk.findall(r)) + len(cjk.sub(" ", r).split()) for r in responses]
    assert cols["words"]["words"].tolist() == words
    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    assert cols["tokens"]["tokens"].tolist() == [len(tok.encode(r, add_special_tokens=False))
                                                 for r in responses]
    zh = [k for k, d in enumerate(pool.extra["domain"]) if d == "chinese"]
    assert all(cols["words"]["words"][k] > len(responses[k].split()) for k in zh)


# --- language ------------------------------------------------------------------------

SENTENCES = {
    "en": "The weather is lovely today, so we are going for a long walk in the park.",
    "fr": "Il fait très beau aujourd'hui, alors nous allons faire une longue promenade.",
    "de": "Das Wetter ist heute wunderbar, deshalb machen wir einen langen Spaziergang.",
    "es": "Hoy hace un tiempo precioso, así que vamos a dar un largo paseo por el parque.",
    "ru": "Сегодня прекрасная погода, поэтому мы идём на долгую прогулку в парк.",
    "zh": "今天天气很好，所以我们要去公园散步很长时间。",
    "ja": "今日はとても良い天気なので、公園を長い時間散歩します。",
}


def test_language_of_hand_written_sentences_offline(monkeypatch, store):
    """The model ships inside the package: identification works with sockets refused."""
    from winnow.signals import language

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    language._identifier.cache_clear()
    pool = _pool(list(SENTENCES.values()))
    cols = get_signal("language", text="response")(pool, Store(store.root / "offline"))
    assert cols["language"].tolist() == list(SENTENCES)
    assert (cols["language_score"] > 0.9).all()
    with pytest.raises(ValueError, match="unknown language codes"):
        get_signal("language", languages=["en", "xx"])(pool, store)


def test_language_on_the_mixed_pool(mixed, store):
    """English and Chinese domains of the real pool, restricted to the two languages."""
    cols = get_signal("language", languages=["en", "zh"])(mixed, store)
    by_domain: dict[str, Counter] = {}
    for d, lang in zip(mixed.extra["domain"], cols["language"]):
        by_domain.setdefault(d, Counter())[str(lang)] += 1
    zh, general = by_domain["chinese"], by_domain["general"]
    assert zh["zh"] / zh.total() > 0.97 and general["en"] / general.total() > 0.99
    assert by_domain["identity"]["zh"] > 0 and by_domain["identity"]["en"] > 0
    assert by_domain["code"]["zh"] == 0


def test_language_filter_stage(mixed, store, tmp_path):
    from winnow.recipes.outputs import write_scores

    pool = _sample(mixed, 20)
    recipe = Recipe.from_dict({
        "name": "zh-only", "signals": {"lang": {"signal": "language"}},
        "stages": [{"filter": "language in ['zh', 'wuu'] and language_score > 0.5"},
                   {"random": {}}]})
    result = run_recipe(recipe, pool, "100%", store=store)
    langs = result.columns["language"]
    kept = set(result.selected.tolist())
    for i in range(len(pool)):
        wanted = langs[i] in ("zh", "wuu") and result.columns["language_score"][i] > 0.5
        assert (i in kept) == wanted
    write_scores(result, tmp_path / "scores.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["language"] for r in rows] == langs.tolist()
    dropped = next(r for r in rows if not r["selected"])
    assert dropped["fate_reason"] == "filtered" and "language in" in \
        dropped["fate_detail"]["expression"]


# --- Gopher, from the definitions ----------------------------------------------------


def _repeats(items: list) -> tuple[int, int]:
    """(how many items equal an earlier one, their characters)."""
    count = chars = 0
    for k, item in enumerate(items):
        if item in items[:k]:
            count, chars = count + 1, chars + len(item)
    return count, chars


def _frac(a: float, b: float) -> float:
    return a / b if b else float("nan")


def brute_repetition(text: str) -> dict[str, float]:
    words = text.split()
    out = {}
    for name, parts in (("para", re.split("\n\n+", text.strip())),
                        ("line", re.split("\n+", text))):
        count, chars = _repeats(parts)
        out[f"dup_{name}_frac"] = _frac(count, len(parts))
        out[f"dup_{name}_char_frac"] = _frac(chars, len(text))
    for n in (2, 3, 4):
        grams = [tuple(words[k:k + n]) for k in range(len(words) - n + 1)]
        if not grams:
            out[f"top_{n}_gram_char_frac"] = 0.0
            continue
        best = max(grams.count(g) for g in grams)
        top = next(g for g in grams if grams.count(g) == best)  # the first most frequent
        out[f"top_{n}_gram_char_frac"] = _frac(len(" ".join(top)) * best, len(text))
    for n in range(5, 11):
        # walk the words; an n-gram seen before counts its characters and is jumped over
        seen, chars, k = set(), 0, 0
        while k + n <= len(words):
            gram = tuple(words[k:k + n])
            if gram in seen:
                chars += sum(len(w) for w in gram)
                k += n
            else:
                seen.add(gram)
                k += 1
        out[f"dup_{n}_gram_char_frac"] = _frac(chars, len(text))
    out["gopher_words"] = len(words)
    return out


def brute_quality(text: str) -> dict[str, float]:
    from datatrove.utils.text import PUNCTUATION_SET  # Gopher's symbol set, as data

    words = text.split()
    kept = [w for w in words if not set(w) <= PUNCTUATION_SET]
    lines = text.splitlines()
    return {
        "non_symbol_words": len(kept),
        "mean_word_length": _frac(sum(map(len, kept)), len(kept)),
        "hash_word_ratio": _frac(text.count("#"), len(words)),
        "ellipsis_word_ratio": _frac(text.count("...") + text.count("…"), len(words)),
        "bullet_lines_frac": _frac(sum(ln.strip()[:1] in ("•", "-") for ln in lines), len(lines)),
        "ellipsis_lines_frac": _frac(sum(ln.rstrip()[-3:] == "..." or ln.rstrip()[-1:] == "…"
                                         for ln in lines), len(lines)),
        "alpha_words_frac": _frac(sum(any(unicodedata.category(c).startswith("L")
                                          for c in w) for w in words), len(words)),
        "stop_words": len(STOP_WORDS & set(words)),
    }


def quality_passes(v: dict[str, float]) -> bool:
    return bool(50 <= v["non_symbol_words"] <= 100000 and 3 <= v["mean_word_length"] <= 10
                and v["hash_word_ratio"] <= 0.1 and v["ellipsis_word_ratio"] <= 0.1
                and v["bullet_lines_frac"] <= 0.9 and v["ellipsis_lines_frac"] <= 0.3
                and v["alpha_words_frac"] >= 0.8 and v["stop_words"] >= 2)


EDGE_TEXTS = ["", "word", "one two", "a\n\na\n\na\n\nb", "x\ny\nx\ny\nx\n", "\n\nlead and trail\n",
              " ".join(["the cat sat on the mat"] * 6), "- a\n- b\n- c...\n#tag #tag …",
              "ab cd ef gh ij kl " * 3 + "zz " + "ab cd ef gh ij kl " * 2]


def _texts(mixed: Pool) -> list[str]:
    """Responses of every 7th example of each domain, and edge cases."""
    return [last_exchange(c)[1] for c in _sample(mixed, 7).conversations] + EDGE_TEXTS


def test_gopher_repetition_values_match_the_definition(mixed, store):
    texts = _texts(mixed)
    cols = get_signal("gopher_repetition")(_pool(texts), store)
    failed = 0
    for k, text in enumerate(texts):
        want = brute_repetition(text)
        for name, value in want.items():
            np.testing.assert_allclose(cols[name][k], value, rtol=1e-12, equal_nan=True,
                                       err_msg=f"{name} of text {k}: {text[:80]!r}")
        passes = bool(text) and all(want[c] <= limit for c, limit in REPETITION.items())
        assert bool(cols["gopher_repetition_pass"][k]) == passes, text[:80]
        failed += not passes
    assert 0 < failed < len(texts)


def test_gopher_quality_values_match_the_definition(mixed, store):
    texts = _texts(mixed)
    cols = get_signal("gopher_quality")(_pool(texts), store)
    passed = 0
    for k, text in enumerate(texts):
        want = brute_quality(text)
        for name, value in want.items():
            np.testing.assert_allclose(cols[name][k], value, rtol=1e-12, equal_nan=True,
                                       err_msg=f"{name} of text {k}: {text[:80]!r}")
        assert bool(cols["gopher_quality_pass"][k]) == (bool(text.split())
                                                        and quality_passes(want)), text[:80]
        passed += quality_passes(want)
    assert 0 < passed < len(texts)


def test_gopher_thresholds_are_parameters(store):
    texts = ["a b a b a b a b", "x\nx\ny"]
    strict = get_signal("gopher_repetition")(_pool(texts), store)
    loose = get_signal("gopher_repetition", top_n_grams=[], dup_n_grams=[[5, 0.9]],
                       dup_line_frac=None)(_pool(texts), store)
    assert not strict["gopher_repetition_pass"].any() and loose["gopher_repetition_pass"].all()
    assert "top_2_gram_char_frac" not in loose and "dup_6_gram_char_frac" not in loose
    np.testing.assert_allclose(loose["dup_line_frac"], strict["dup_line_frac"])


def test_example_recipe_with_every_model_free_filter(mixed, store, shared_data):
    """examples/recipes/prefilter_quality.yaml validates; its model-free stages on a real
    sample drop exactly what their columns say (the model stages are left out here)."""
    from dataclasses import replace
    from pathlib import Path

    from winnow.recipes.recipe import load_recipe
    from winnow.recipes.validate import validate

    path = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "prefilter_quality.yaml"
    recipe = load_recipe(str(path)).with_params({"languages": ["en"], "max_length": 256})
    validate(recipe, pool=mixed)
    cheap = replace(recipe, stages=[*recipe.stages[:5], {"random": {}}])
    pool = _sample(mixed, 8)
    result = run_recipe(cheap, pool, "100%", store=store)
    c, left = result.columns, result.left_stage
    assert [s["label"] for s in result.stages[2:5]] == [
        "filter language in ['en']", "filter tokens <= 256",
        "filter gopher_repetition_pass or gopher_words < 50"]
    for i in np.flatnonzero(left >= 2):
        assert (left[i] == 2) == (c["language"][i] != "en")
        if left[i] > 2:
            assert (left[i] == 3) == (c["tokens"][i] > 256)
        if left[i] > 3:
            assert (left[i] == 4) == (not c["gopher_repetition_pass"][i]
                                      and c["gopher_words"][i] >= 50)
    assert {2, 3, -1} <= set(left.tolist())
