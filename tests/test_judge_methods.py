"""The judge-scored methods: deita, alpagasus (-top), self-curation, lift, wavecoder,
tree-instruct, tegit and qdit's judge quality.

Four layers: (1) every shipped prompt renders the official text for known examples, the
references being the official strings (``judge_prompt_references``) assembled the way the
official code assembles them; (2) every parser on replies in the official formats, malformed
ones included; (3) the selectors and stages the recipes add, against the official steps
recomputed here; (4) each recipe end to end through ``winnow select``: with a scripted judge
(``scripted_judge``) whose replies the test chooses, so that each method's rule is checked
exactly, and with the built-in judge (SmolLM2: DEITA's scores in process, the llama.cpp
server for the others), where the checks are on mechanics and rules, not on quality. The
generative built-in runs are ``slow``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from judge_prompt_references import (
    ALPAGASUS_SYSTEM,
    ALPAGASUS_TRIPLET,
    ALPAGASUS_USER_PROMPT,
    DEITA_COMPLEXITY_TEMPLATE,
    DEITA_QUALITY_TEMPLATE,
    LIFT_SCORE_CRITERIA_AND_SHOTS,
    LIFT_SYSTEM_MESSAGE,
    LIFT_TEXT_INPUT_TAIL,
    LIFT_TEXT_NO_INPUT_TAIL,
    SELF_CURATION_RUBRIC,
    WAVECODER_BAD_CASE_0,
    WAVECODER_DISCRIMINATOR_TXT,
    WAVECODER_SYSTEM,
)
from scripted_judge import ScriptedJudge
from typer.testing import CliRunner

from winnow.cli import app
from winnow.data import load_pool
from winnow.recipes.recipe import load_recipe
from winnow.recipes.validate import RecipeError, validate
from winnow.registry import get_selector
from winnow.selectors.deita import deita_score
from winnow.signals.judge import exchanges, fields_of, load_prompt
from winnow.signals.judge_parsers import ParseError, make_parser

RECIPES = ("deita", "deita-columns", "alpagasus", "alpagasus-top", "self-curation", "lift",
           "wavecoder", "tree-instruct", "tegit", "qdit")

WITH_INPUT = {"instruction": "Sort the list in ascending order.", "input": "3, 1, 2",
              "output": "1, 2, 3"}
NO_INPUT = {"instruction": "Name a primary colour.", "input": "", "output": "Red."}


def fields(record: dict) -> dict[str, str]:
    """The judge's template fields of one Alpaca record, read as winnow reads the file."""
    pool = load_pool_of([record])
    return fields_of(*exchanges(pool.conversations[0])[-1])


def load_pool_of(records: list[dict]):
    import tempfile

    path = Path(tempfile.mkdtemp()) / "pool.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return load_pool(path)


# -- (1) prompts render the official texts ------------------------------------------------


@pytest.mark.parametrize("record", [WITH_INPUT, NO_INPUT])
def test_deita_prompts_are_the_scorers_raw_text(record):
    f = fields(record)
    query = record["instruction"] + ("\n\n" + record["input"] if record["input"] else "")
    assert f["query"] == query
    complexity, quality = load_prompt("deita-complexity"), load_prompt("deita-quality")
    assert complexity.fill(f) == DEITA_COMPLEXITY_TEMPLATE.format(instruction=query)
    assert quality.fill(f) == DEITA_QUALITY_TEMPLATE.format(instruction=query,
                                                            output=record["output"])
    for p in (complexity, quality):  # raw text, no chat template, the six digits, 3.0
        assert (p.endpoint, p.system, p.parse) == ("completion", None, "digits-expectation")
        assert p.parse_options["digits"] == "123456" and p.parse_options["fallback"] == 3.0


def test_deita_scores_every_turn_as_the_score_pipeline_pairs_them():
    conversation = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                    {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    pairs = [(f["query"], f["response"]) for f in
             (fields_of(u, a) for u, a in exchanges(conversation))]
    assert pairs == [("q1", "a1"), ("q2", "a2")]


@pytest.mark.parametrize("record", [WITH_INPUT, NO_INPUT])
def test_alpagasus_prompt_is_the_rating_scripts_message(record):
    prompt = load_prompt("alpagasus")
    expected = ALPAGASUS_TRIPLET.format_map(record) + ALPAGASUS_USER_PROMPT
    assert prompt.fill(fields(record)) == expected
    assert "### Input:\n\n\n### Response:" in expected or record["input"]  # kept when empty
    assert (prompt.system, prompt.endpoint) == (ALPAGASUS_SYSTEM, "chat")
    assert (prompt.temperature, prompt.max_tokens, prompt.parse) == (0.0, 256, "first-number")


@pytest.mark.parametrize("record", [WITH_INPUT, NO_INPUT])
def test_self_curation_prompt_is_table_1_with_the_pair(record):
    prompt = load_prompt("self-curation")
    f = fields(record)
    assert prompt.fill(f) == f"{SELF_CURATION_RUBRIC}\n\n{f['query']}\n{record['output']}"
    assert (prompt.system, prompt.parse) == (None, "last-score")


@pytest.mark.parametrize("record", [WITH_INPUT, NO_INPUT])
def test_lift_prompt_has_the_input_block_only_with_an_input(record):
    prompt = load_prompt("lift-quality")
    tail = LIFT_TEXT_INPUT_TAIL if record["input"] else LIFT_TEXT_NO_INPUT_TAIL
    expected = (LIFT_SCORE_CRITERIA_AND_SHOTS + tail).format_map(record)
    assert prompt.fill(fields(record)) == expected
    assert (prompt.system, prompt.temperature, prompt.parse) == (
        LIFT_SYSTEM_MESSAGE, 0.5, "first-line-integer")


@pytest.mark.parametrize("record", [WITH_INPUT, NO_INPUT])
def test_wavecoder_prompt_is_the_discriminators_message(record):
    """main.py: the rule file read as "\\n".join(readlines()), the bad case ("Bad Case 0:"),
    the example as the generated task's Output block (information <noinput> when empty), then
    "Analysis:", in discriminator()'s prompt_format."""
    rules = "\n".join(WAVECODER_DISCRIMINATOR_TXT.splitlines(keepends=True))
    bad = f"Bad Case 0:\n{WAVECODER_BAD_CASE_0}\n"
    task = {"instruction": record["instruction"], "information": record["input"] or "<noinput>",
            "solution": record["output"]}
    example = "Output:\n" + "".join(f"{k}: {v}\n" for k, v in task.items())
    expected = f"\n{rules}\n{bad}\n\n{example}\n\nAnalysis:\n\n    "
    prompt = load_prompt("wavecoder")
    assert prompt.fill(fields(record)) == expected
    assert (prompt.system, prompt.temperature, prompt.max_tokens) == (WAVECODER_SYSTEM, 1.0, 512)


def test_approximation_prompts_fill_every_field_and_say_so():
    f = fields(WITH_INPUT)
    tree, tegit = load_prompt("tree-instruct"), load_prompt("tegit")
    assert f["query"] in tree.fill(f) and '{"node": ' in tree.fill(f)
    assert all(f[k] in tegit.fill(f) for k in ("instruction", "input", "response"))
    assert "### Input" not in tegit.fill(fields(NO_INPUT))
    for p in (tree, tegit):
        assert "{" + "query}" not in p.fill(f) and p.notes.startswith("Approximation")
    for name in ("tree-instruct", "tegit"):
        assert load_recipe(name).notes.startswith("Approximation")


# -- (2) parsers on replies of the official formats ---------------------------------------


def parse(name: str, text: str, logprobs=None, **options) -> float:
    try:
        return make_parser(name, **options)(text, logprobs).value
    except ParseError:
        return math.nan


def same(a, b) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@pytest.mark.parametrize("reply,expected", [
    ("5\nThe response is accurate and complete.", 5.0),       # the official format
    ("4.5 \n\nThe response is mostly accurate.", 4.5),
    ("3", 3.0),
    ("score: 4.6\nThe response ...", 4.6),                      # after "score:"
    ("Accuracy score: 4 out of 5.", 4.0),                       # official: float() raises
    ("Score: 4.8\nThe response ...", 4.8),                      # official: reads " " only
    ("I would rate this response highly.", math.nan),           # official -1
    ("", math.nan),
])
def test_alpagasus_parser(reply, expected):
    assert same(parse("first-number", reply), expected)


@pytest.mark.parametrize("reply,expected", [
    ("The answer is complete and helpful.\nScore: 5", 5.0),
    ("First impression Score: 3, but on reflection it is good.\nScore: 4", 4.0),  # the last
    ("Reasoning...\nScore: 4.5", 4.5),
    ("Score:5", 5.0),
    ("The answer deserves a five.", math.nan),
    ("Score: <rating>", math.nan),
])
def test_self_curation_parser(reply, expected):
    assert same(parse("last-score", reply), expected)


@pytest.mark.parametrize("reply,expected", [
    ("85\nThe instruction is clear ...", 85.0),
    ("Total Score: 67/100; Clarity: 2/15; Difficulty: 10/25;", 67.0),  # the shots' format
    ("91.5 points", 91.0),                                             # official int(\d+)
    ("The total is\n85", math.nan),                                    # official 0
    ("", math.nan),
])
def test_lift_parser(reply, expected):
    assert same(parse("first-line-integer", reply), expected)


def checklist(overall: str) -> str:
    return ("- step 1: check the Instruction:\n1. Instruction: the programming language should "
            "be specified in the instruction. <answer: yes, Python is named.>\n- step 2: check "
            "the Solution:\n1. Solution: ... <answer: yes, it is related.>\n"
            f"- Overall answer: {overall}\n- reasons: as above.")


@pytest.mark.parametrize("reply,expected", [
    (checklist("yes"), 1.0),
    (checklist("Yes"), 1.0),
    (checklist("no"), 0.0),
    (checklist("not sure"), 0.0),      # the official test is "no" in the answer
    (checklist("yes, mostly") + "\n\nMore text after the block.", 1.0),
    (WAVECODER_BAD_CASE_0.split("Analysis:\n\n", 1)[1], 0.0),  # the official bad case
    ("- Overall answer: yes\n- reasons: fine", math.nan),         # no "- step 1:"
    (checklist("yes").split("- reasons")[0], math.nan),           # no "- reasons:"
    ("The data meets the specifications.", math.nan),
])
def test_wavecoder_parser(reply, expected):
    assert same(parse("overall-answer", reply), expected)


@pytest.mark.parametrize("reply,expected", [
    ('{"node": "write", "children": [{"node": "a poem", "children": []}, {"node": "rhyming"}]}',
     3.0),
    ('```json\n{"node": "sort", "children": [{"node": "list", "children": [{"node": "3, 1, 2"'
     '}]}, {"node": "ascending"}]}\n```', 4.0),
    ('{"node": "sort", "children": [', math.nan),                 # cut
    ('{"task": "sort"}', math.nan),                                # no node key
    ("sort -> list -> ascending", math.nan),
])
def test_tree_parser(reply, expected):
    assert same(parse("json-tree-size", reply), expected)


def test_deita_digit_expectation_and_its_flagged_fallback():
    prompt = load_prompt("deita-quality")
    parser = make_parser(prompt.parse, **prompt.parse_options)
    top = {d: math.log(p) for d, p in zip("123456", (0.05, 0.05, 0.1, 0.2, 0.3, 0.3))}
    top["The"] = -0.1
    lp = [{"token": "5", "logprob": top["5"],
           "top_logprobs": [{"token": k, "logprob": v} for k, v in top.items()]}]
    got = parser("5", lp)
    assert got.fallback is None
    assert got.value == pytest.approx(sum(k * p for k, p in
                                          zip(range(1, 7), (0.05, 0.05, 0.1, 0.2, 0.3, 0.3))))
    lp[0]["top_logprobs"] = [a for a in lp[0]["top_logprobs"] if a["token"] != "6"]
    missing = parser("5", lp)
    assert missing.value == 3.0 and "6" in missing.fallback


def test_tegit_reads_p_yes_at_the_first_answer_token():
    lp = [{"token": "Yes", "logprob": math.log(0.6), "top_logprobs": [
        {"token": "Yes", "logprob": math.log(0.6)}, {"token": " no", "logprob": math.log(0.2)},
        {"token": "Maybe", "logprob": math.log(0.2)}]}]
    assert parse("yes-no", "Yes", lp) == pytest.approx(0.75)
    assert parse("yes-no", "No, it is not grounded.") == 0.0


# -- (3) selectors and stages --------------------------------------------------------------


def official_variety(X: np.ndarray) -> np.ndarray:
    """embedding_variety_curation.py's steps: StandardScaler, PCA with argmax(cumsum >= .95)
    components, each row's variance, kept above the 80th percentile."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit_transform(X)
    k = int(np.argmax(PCA(n_components=min(Z.shape)).fit(Z)
                      .explained_variance_ratio_.cumsum() >= 0.95))
    var = np.var(PCA(n_components=k).fit_transform(Z), axis=1)
    return np.flatnonzero(var > np.percentile(var, 80))


def test_lift_variety_keeps_the_official_rows():
    X = np.random.default_rng(0).normal(size=(300, 24)) @ np.diag(np.linspace(3, 0.2, 24))
    sel = get_selector("lift-variety").select(300, X=X)
    assert sel.indices.tolist() == official_variety(X).tolist()
    assert sel.trace["passed"] == len(sel.indices) == 60
    capped = get_selector("lift-variety").select(10, X=X)  # a budget keeps the most varied
    assert set(capped.indices) <= set(sel.indices) and len(capped.indices) == 10
    assert capped.scores.min() >= np.sort(sel.scores)[-10]


def test_deita_walk_order_is_the_sum_over_turns_of_complexity_times_quality():
    c = np.array([[2.0, 5.0], [6.0], [1.0, 1.0, 1.0], [3.0]], dtype=object)
    q = np.array([[3.0, 1.0], [1.5], [4.0, 4.0, 4.0], [np.nan]], dtype=object)
    s = deita_score(4, None, c, q)
    assert s[:3].tolist() == [11.0, 9.0, 12.0] and math.isnan(s[3])
    assert deita_score(2, np.array([2.0, 3.0]), np.array([[1.0], [2.0]])).tolist() == [2.0, 6.0]
    X = np.eye(4)
    sel = get_selector("deita", threshold=0.9).select(4, X=X, complexity=c, quality=q)
    assert sel.indices.tolist() == [2, 0, 1, 3]  # NaN last


def test_assign_stage_is_checked_before_anything_runs():
    pool = load_pool_of([WITH_INPUT, NO_INPUT])
    recipe = load_recipe("lift").with_params()
    validate(recipe, pool=pool)
    broken = load_recipe("lift").with_params()
    broken.stages[1] = {"assign": {"length_score": "length / percentile(lenght, 98)"}}
    with pytest.raises(RecipeError, match="lenght"):
        validate(broken, pool=pool)
    broken.stages[1] = {"assign": ["length"]}
    with pytest.raises(RecipeError, match="mapping"):
        validate(broken, pool=pool)


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_validate_and_name_their_sources(name):
    pool = load_pool_of([WITH_INPUT, NO_INPUT])
    pool.extra.update(complexity=[1.0, 2.0], quality=[3.0, 4.0])
    recipe = load_recipe(name)
    validate(recipe.with_params(), pool=pool)
    assert recipe.paper and recipe.notes
    for spec in recipe.signals.values():
        if spec.get("signal") == "judge":
            prompt = load_prompt(spec["prompt"])
            assert prompt.source and prompt.notes


# -- (4) end to end through the CLI --------------------------------------------------------


@pytest.fixture(scope="module")
def alpaca24(shared_data, tmp_path_factory) -> tuple[Path, list[dict]]:
    """24 short real Alpaca records (14 with an input), as an Alpaca JSON file."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    records = [r for r in records[:300] if len(json.dumps(r)) < 600][:24]
    path = tmp_path_factory.mktemp("judged") / "alpaca24.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path, records


def select(recipe: str, data: Path, budget, out: Path, *args) -> tuple[list[dict], dict]:
    """Run ``winnow select``; (scores rows, manifest)."""
    result = CliRunner().invoke(app, ["select", recipe, "--data", str(data), "--budget",
                                      str(budget), "--out", str(out), *map(str, args)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in
            out.with_suffix(".scores.jsonl").read_text(encoding="utf-8").splitlines()]
    manifest = json.loads(out.with_suffix(".manifest.json").read_text(encoding="utf-8"))
    subset = json.loads(out.read_text(encoding="utf-8"))
    assert len(subset) == sum(r["selected"] for r in rows) == manifest["selected"]
    return rows, manifest


def col(rows: list[dict], name: str) -> np.ndarray:
    return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=np.float64)


def kept(rows: list[dict]) -> set[int]:
    return {k for k, r in enumerate(rows) if r["selected"]}


def by_record(records: list[dict], replies: list):
    """A reply function: the reply of the record whose instruction is in the prompt."""
    def reply(prompt: str):
        k = max((k for k, r in enumerate(records) if r["instruction"] in prompt),
                key=lambda k: len(records[k]["instruction"]))
        return replies[k % len(replies)]
    return reply


def scripted(recipe, pool, budget, out, judge, *args):
    return select(recipe, pool, budget, out, "--judge-url", judge.url, "--judge-model",
                  "scripted", "--cache-dir", out.parent / "cache", *args)


def test_alpagasus_keeps_every_rating_of_at_least_4_5_whatever_the_budget(alpaca24, tmp_path):
    path, records = alpaca24
    replies = ["5\nThe response is accurate.", "4.5", "4\nMostly right.", "Score: 4.8\nGood.",
               "score: 4.6 out of 5", "3.5\nSome errors.", "I would rate it highly.",
               "4.5 \n\nAccurate."]
    parsed = [5.0, 4.5, 4.0, 4.8, 4.6, 3.5, math.nan, 4.5]
    expected = np.array([parsed[k % 8] for k in range(24)])
    with ScriptedJudge(by_record(records, [(r, None) for r in replies])) as judge:
        rows, manifest = scripted("alpagasus", path, 2, tmp_path / "a.json", judge)
        np.testing.assert_array_equal(col(rows, "alpagasus"), expected)
        assert kept(rows) == {k for k in range(24) if expected[k] >= 4.5}  # 15, budget 2
        assert manifest["signal_stats"]["rating"]["unparseable"] == 3
        top, _ = scripted("alpagasus-top", path, 4, tmp_path / "t.json", judge)
    assert kept(top) == {0, 8, 16, 3}  # the three 5.0s, then the first of the 4.8s


def test_self_curation_keeps_the_last_score_of_5_or_the_chosen_minimum(alpaca24, tmp_path):
    path, records = alpaca24
    replies = ["Perfect AI answer.\nScore: 5", "Good but long.\nScore: 4",
               "First Score: 3, revised.\nScore: 5", "No rating.", "Score: 2"]
    expected = np.array([[5, 4, 5, math.nan, 2][k % 5] for k in range(24)], dtype=float)
    with ScriptedJudge(by_record(records, [(r, None) for r in replies])) as judge:
        rows, _ = scripted("self-curation", path, 3, tmp_path / "s.json", judge)
        four, _ = scripted("self-curation", path, 3, tmp_path / "s4.json", judge,
                           "--set", "min_score=4")
    np.testing.assert_array_equal(col(rows, "self_curation"), expected)
    assert kept(rows) == {k for k in range(24) if expected[k] == 5}
    assert kept(four) == {k for k in range(24) if expected[k] >= 4}


def test_wavecoder_keeps_no_no_then_k_center_meets_the_budget(alpaca24, tmp_path):
    path, records = alpaca24
    replies = [checklist("yes"), checklist("no"), checklist("not sure"), "Looks fine.",
               checklist("Yes")]
    expected = np.array([[1, 0, 0, math.nan, 1][k % 5] for k in range(24)], dtype=float)
    passing = {k for k in range(24) if expected[k] == 1}
    with ScriptedJudge(by_record(records, [(r, None) for r in replies])) as judge:
        rows, _ = scripted("wavecoder", path, "100%", tmp_path / "w.json", judge)
        small, manifest = scripted("wavecoder", path, 4, tmp_path / "w4.json", judge)
    np.testing.assert_array_equal(col(rows, "wavecoder"), expected)
    assert kept(rows) == passing
    assert len(kept(small)) == 4 and kept(small) <= passing
    assert [s["kind"] for s in manifest["stages"]] == ["filter", "select"]
    assert manifest["stages"][1]["spec"]["select"] == "kcenter"


def test_lift_variety_then_0_9_judge_plus_0_1_length(alpaca24, tmp_path):
    from winnow.data import load_pool
    from winnow.registry import get_signal
    from winnow.store import Store

    path, records = alpaca24
    scores = [85, 40, 67, None, 91, 73]
    replies = [(f"{s}\nClear and accurate." if s is not None else "Great job!", None)
               for s in scores]
    with ScriptedJudge(by_record(records, replies)) as judge:
        rows, manifest = scripted("lift", path, 3, tmp_path / "l.json", judge)
        asked = len(judge.asked)
    X = get_signal("embedding", text="lift")(load_pool(path), Store(tmp_path / "emb"))
    variety = official_variety(np.asarray(X["embedding"], dtype=np.float64))
    survivors = [k for k, r in enumerate(rows) if r["fate_stage"] != 0]
    assert survivors == variety.tolist() and asked == len(variety) > 0  # judged: those only
    length = np.array([len((r["instruction"] + r["input"] + r["output"]).replace("\t", "")
                           .replace("\n", "")) for r in records], dtype=float)
    np.testing.assert_array_equal(col(rows, "length"), length)
    q = np.array([np.nan if scores[k % 6] is None else scores[k % 6] for k in range(24)])
    cut = np.percentile(length[variety], 98)
    total = 0.9 * np.nan_to_num(q[variety]) + 0.1 * np.minimum(100, 100 * length[variety] / cut)
    np.testing.assert_allclose(col(rows, "lift_total")[variety], total)
    best = variety[np.argsort(-total, kind="stable")[:3]]
    assert kept(rows) == set(best.tolist())
    assert [s["kind"] for s in manifest["stages"]] == ["select", "assign", "top"]


def test_tree_instruct_and_tegit_rank_by_their_judge_scores(alpaca24, tmp_path):
    path, records = alpaca24

    def tree(n: int) -> str:
        return json.dumps({"node": "task", "children": [{"node": f"n{i}"} for i in range(n - 1)]})

    sizes = [3, 7, 1, None, 5, 7]
    trees = [(tree(s) if s else "I cannot build a tree.", None) for s in sizes]
    p_yes = [0.9, 0.4, 0.75, 0.55, 0.2, 0.6]
    yes = [("Yes", {"Yes": math.log(p), "No": math.log(1 - p)}) for p in p_yes]
    with ScriptedJudge(by_record(records, trees)) as judge:
        t_rows, _ = scripted("tree-instruct", path, 5, tmp_path / "t.json", judge)
    with ScriptedJudge(by_record(records, yes)) as judge:
        g_rows, _ = scripted("tegit", path, 6, tmp_path / "g.json", judge)
    nodes = np.array([np.nan if sizes[k % 6] is None else sizes[k % 6] for k in range(24)])
    np.testing.assert_array_equal(col(t_rows, "tree_nodes"), nodes)
    assert kept(t_rows) == {1, 5, 7, 11, 13}  # the first five of the eight 7s
    p = np.array([p_yes[k % 6] for k in range(24)])
    np.testing.assert_allclose(col(g_rows, "tegit"), p)
    passing = [k for k in np.argsort(-p, kind="stable") if p[k] >= 0.5]
    assert kept(g_rows) == set(passing[:6])


def digits(value: int, drop: str = "") -> dict[str, float]:
    """Top log-probabilities putting (almost) all mass on one digit."""
    return {d: (0.0 if int(d) == value else -60.0) for d in "123456" if d not in drop}


def test_deita_ranks_by_the_sum_over_turns_of_complexity_times_quality(tmp_path):
    """A multi-turn pool with per-turn scores chosen by a scripted judge asked over HTTP
    (backend server): columns per turn, their means, the 3.0 fallback flagged, and the walk
    in descending Σ_t c_t q_t (threshold 1: the filter skips nothing)."""
    turns = [[(2, 3), (5, 1)], [(6, 2)], [(1, 4), (1, 4), (1, 4)], [(3, 3)], [(4, 4), (1, 1)],
             [(2, 2)]]
    convs = [{"conversations": [m for t, _ in enumerate(ts) for m in (
        {"from": "human", "value": f"question {k}.{t}"},
        {"from": "gpt", "value": f"answer {k}.{t}"})]} for k, ts in enumerate(turns)]
    data = tmp_path / "multi.json"
    data.write_text(json.dumps(convs), encoding="utf-8")

    def reply(prompt: str):
        k, t = (int(x) for x in prompt.split("question ")[1].split()[0].split("."))
        c, q = turns[k][t]
        if "##Complexity: " in prompt:
            return str(c), digits(c)
        return str(q), digits(q, drop="6" if (k, t) == (5, 0) else "")  # a missing digit

    with ScriptedJudge(reply) as judge:
        rows, manifest = scripted("deita", data, 4, tmp_path / "d.json", judge,
                                  "--set", "backend=server", "--set", "threshold=1.0")
    quality = [[3.0 if (k, t) == (5, 0) else q for t, (_, q) in enumerate(ts)]
               for k, ts in enumerate(turns)]
    expected = [sum(c * q for (c, _), q in zip(ts, qs)) for ts, qs in zip(turns, quality)]
    assert expected == [11, 12, 12, 9, 17, 6]
    np.testing.assert_allclose(col(rows, "complexity"), [np.mean([c for c, _ in ts])
                                                         for ts in turns])
    np.testing.assert_allclose(col(rows, "quality"), [np.mean(qs) for qs in quality])
    ranked = sorted(kept(rows), key=lambda k: rows[k]["rank"])
    assert ranked == [4, 1, 2, 0]  # 17, 12, 12 (pool order), 11
    assert manifest["signal_stats"]["quality"]["fallback"] == 1


def test_qdit_asks_the_deita_quality_judge_without_a_quality_column(alpaca24, tmp_path):
    path, records = alpaca24
    with ScriptedJudge(lambda prompt: ("3", digits(1 + len(prompt) % 6))) as judge:
        rows, manifest = scripted("qdit", path, 5, tmp_path / "q.json", judge,
                                  "--set", "backend=server")
    quality = col(rows, "judge_quality")
    assert np.isfinite(quality).all() and len(np.unique(np.round(quality))) > 1
    assert manifest["selected"] == 5 and manifest["stages"][0]["trace"]["quality"]


# -- with the built-in judge (SmolLM2) ------------------------------------------------------


@pytest.fixture(scope="module")
def builtin_server():
    """One llama.cpp server for the module (SmolLM2 GGUF, 2 slots, 1 thread: llama.cpp's
    spinning threads crawl on a busy 2-core machine)."""
    from winnow.models.judge_server import JudgeServer

    with JudgeServer(slots=2, threads=1) as server:
        yield server


def test_deita_with_the_builtin_judge(alpaca24, session_cache, tmp_path):
    """No score column given: complexity and quality come from SmolLM2's digit logits (in
    process), per example and numeric; the walk follows c x q (one turn each)."""
    path, _ = alpaca24
    rows, manifest = select("deita", path, 5, tmp_path / "d.json", "--cache-dir", session_cache)
    c, q = col(rows, "complexity"), col(rows, "quality")
    for v in (c, q):
        assert np.isfinite(v).mean() >= 0.95 and len(np.unique(v)) > 1
        assert ((v[np.isfinite(v)] >= 1) & (v[np.isfinite(v)] <= 6)).all()
    order = np.argsort(-(c * q), kind="stable")
    ranked = sorted(kept(rows), key=lambda k: rows[k]["rank"])
    assert ranked == [k for k in order.tolist() if k in kept(rows)]  # walk order
    trace = manifest["stages"][0]["trace"]
    assert trace["examined"] == order.tolist().index(ranked[-1]) + 1
    assert trace["examined"] - trace["skipped"] == 5


def test_qdit_with_the_builtin_judge(alpaca24, session_cache, tmp_path):
    path, _ = alpaca24
    rows, manifest = select("qdit", path, 5, tmp_path / "q.json", "--cache-dir", session_cache)
    quality = col(rows, "judge_quality")
    assert np.isfinite(quality).all() and len(np.unique(quality)) > 1
    assert manifest["selected"] == 5


def test_tegit_with_the_builtin_server(alpaca24, builtin_server, session_cache, tmp_path):
    path, _ = alpaca24
    rows, _ = select("tegit", path, 5, tmp_path / "g.json", "--cache-dir", session_cache,
                     "--judge-url", builtin_server.url)
    p = col(rows, "tegit")
    assert np.isfinite(p).mean() >= 0.75 and ((p[np.isfinite(p)] >= 0)
                                              & (p[np.isfinite(p)] <= 1)).all()
    passing = [k for k in np.argsort(-np.nan_to_num(p, nan=-1), kind="stable") if p[k] >= 0.5]
    assert kept(rows) == set(passing[:5])


@pytest.mark.parametrize("recipe,column,rule", [
    ("alpagasus", "alpagasus", lambda v: v >= 4.5),
    ("self-curation", "self_curation", lambda v: v >= 5),
    ("wavecoder", "wavecoder", lambda v: v == 1),
    ("tree-instruct", "tree_nodes", None),
    ("lift", "lift_total", None),
])
def test_generative_judges_with_the_builtin_server(recipe, column, rule, alpaca24,
                                                   builtin_server, session_cache, tmp_path):
    """Each recipe runs on 12 of the examples with replies capped at 48 tokens (the cap is
    what the server generated); the rows its rule keeps are kept (SmolLM2 seldom writes
    the official formats, and a capped reply may stop before its verdict: unparseable
    replies are NaN with their reason)."""
    path = tmp_path / "alpaca12.json"
    path.write_text(json.dumps(alpaca24[1][:12]), encoding="utf-8")
    cap = 48
    rows, manifest = select(recipe, path, "100%" if rule else 3, tmp_path / "o.json",
                            "--cache-dir", session_cache, "--judge-url", builtin_server.url,
                            "--judge-max-tokens", cap)
    values = col(rows, column)
    instance, stats = next(iter(manifest["signal_stats"].items()))
    # the examples reaching the stage that asked (lift's variety stage passes 20% on)
    judged = next(s["in"] for s in manifest["stages"] if f"signal:{instance}" in s["computed"])
    assert stats["failed"] == 0 and stats["calls"] + stats["cached"] == judged
    assert stats["completion_tokens"] <= cap * stats["calls"]
    assert all(r[f"{column}_error"] is None or r[f"{column}_error"].startswith("unparseable")
               for r in rows) if f"{column}_error" in rows[0] else True
    if rule is not None:
        passing = {k for k in range(12) if np.isfinite(values[k]) and rule(values[k])}
        assert kept(rows) == passing
    else:
        ranked = np.nan_to_num(values, nan=-1.0)  # NaN ranks last
        chosen = np.array([r["selected"] for r in rows])
        assert chosen.sum() == 3 and ranked[chosen].min() >= ranked[~chosen].max()
