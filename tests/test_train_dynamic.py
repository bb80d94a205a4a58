"""Dynamic selection: DataFlex step semantics, the sampler really switching, resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml
from transformers import Trainer

from winnow.train import TrainConfig, train
from winnow.train.dynamic import DynamicSchedule, SelectionLog
from winnow.train.dynamic.builtin import LossDynamic, window_bounds

# --- pure logic -------------------------------------------------------------------------


def test_schedule_follows_dataflex_steps():
    s = DynamicSchedule(warmup_step=5, update_step=5, update_times=2, total_steps=15)
    assert s.flex_epoch_steps == 15
    assert [(p.start, p.kind, p.update) for p in s.phases()] == [
        (0, "warmup", 0), (5, "update", 1), (10, "update", 2)]
    assert s.selection_steps() == [5, 10]
    two = DynamicSchedule(4, 2, 3, total_steps=20)  # two flex epochs of 10 steps
    assert two.selection_steps() == [4, 6, 8, 14, 16, 18]
    assert [p.start for p in two.phases() if p.kind == "warmup"] == [0, 10]
    assert two.granule == 2
    cut = DynamicSchedule(3, 2, 2, total_steps=6)  # last phase cut short
    assert cut.phases()[-1].steps == 1


def test_total_steps_count_flex_epochs():
    base = dict(train_type="dynamic_select", component_name="random", warmup_step=5,
                update_step=5, update_times=2)
    assert TrainConfig(**base, num_train_epochs=1).total_dynamic_steps() == 15
    assert TrainConfig(**base, num_train_epochs=2).total_dynamic_steps() == 30
    assert TrainConfig(**base, train_step=7).total_dynamic_steps() == 7


def test_loss_bands_weight_the_focus_band():
    losses = np.array([0.1, 0.2, 0.3, 1.0, 1.1, 1.2, 3.0, 3.1, 3.2, np.nan])
    w = LossDynamic(focus="high", focus_weight=5.0).weights(losses)
    assert list(w[:6]) == [1.0] * 6 and list(w[6:9]) == [5.0] * 3 and w[9] == 0.0
    w = LossDynamic(focus="low").weights(losses)
    assert list(w[:3]) == [5.0] * 3 and w[3] == 1.0


def test_delta_loss_window_slides_down_the_list():
    starts = [window_bounds(p, 100, 0.2)[0] for p in (0.0, 0.5, 1.0)]
    assert starts[0] < starts[1] < starts[2] and starts[1] == 40
    assert window_bounds(1.0, 100, 0.2)[1] <= 100


def test_log_keeps_runs_apart(tmp_path):
    log = SelectionLog(tmp_path)
    first = log.open({"pool": "a"}, None)
    log.put(0, {"order": [1, 2]})
    log.put(4, {"order": [3, 4]})
    again = SelectionLog(tmp_path)
    assert again.open({"pool": "a"}, resume_step=2) == first
    assert again.steps() == [0]  # a selection made after the checkpoint is redone
    with pytest.raises(RuntimeError, match="different run"):
        SelectionLog(tmp_path).open({"pool": "b"}, resume_step=2)
    fresh = SelectionLog(tmp_path)
    assert fresh.open({"pool": "b"}, None) != first and fresh.steps() == []


# --- real training ----------------------------------------------------------------------

DATAFLEX_YAML = """
### model
model_name_or_path: default
### method
stage: sft
do_train: true
finetuning_type: lora
lora_target: q_proj,v_proj
lora_rank: 2
lora_alpha: 4
### dataset
dataset: alpaca_en_demo
dataset_dir: {data}
template: alpaca
cutoff_len: 32
max_samples: 16
overwrite_cache: true
preprocessing_num_workers: 1
seed: 42
### output
output_dir: {out}
logging_steps: 1
save_steps: 100
plot_loss: true
overwrite_output_dir: true
report_to: none
### train
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
learning_rate: 1.0e-3
num_train_epochs: 1.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
### dynamic_train
train_type: dynamic_select
component_name: loss
component_params: {{focus: high, batch_size: 16}}
warmup_step: 5
update_step: 5
update_times: 2
"""


class RecordingTrainer(Trainer):
    """Keeps the token rows of every batch trained, by global step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: dict[int, list[tuple[int, ...]]] = {}

    def training_step(self, model, inputs, num_items_in_batch=None):
        rows = []
        for ids, mask in zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist()):
            rows.append(tuple(t for t, m in zip(ids, mask) if m))
        self.seen.setdefault(self.state.global_step, []).extend(rows)
        return super().training_step(model, inputs, num_items_in_batch)


def test_dataflex_yaml_selects_at_the_right_steps_and_switches_data(tmp_path, shared_data,
                                                                    monkeypatch):
    path = tmp_path / "dyn.yaml"
    path.write_text(DATAFLEX_YAML.format(data=shared_data, out=tmp_path / "run"))
    cfg = TrainConfig.from_yaml(path)
    trainers = []

    class Recorder(RecordingTrainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            trainers.append(self)

    result = train(cfg, trainer_cls=Recorder)
    trainer = trainers[0]
    assert result.global_step == 15
    records = {r["step"]: r for r in result.selections}
    assert sorted(records) == [0, 5, 10]
    assert [records[s]["kind"] for s in (0, 5, 10)] == ["warmup", "update", "update"]
    assert records[5]["selector"] == "loss" and "mean_loss" in records[5]["trace"]
    assert records[10]["trace"]["mean_loss"] != records[5]["trace"]["mean_loss"]
    dataset = trainer.train_dataset
    tokens = [tuple(x["input_ids"]) for x in dataset]
    for step in range(15):
        start = max(s for s in records if s <= step)
        order = records[start]["order"]
        expected = order[(step - start) * 2:(step - start + 1) * 2]
        assert sorted(trainer.seen[step]) == sorted(tokens[i] for i in expected), step
    for start in (5, 10):  # update phases train exactly on the selected examples
        assert sorted(records[start]["order"]) == sorted(records[start]["indices"])
        assert len(records[start]["indices"]) == 10
    assert records[5]["order"] != records[0]["order"]
    saved = json.loads((tmp_path / "run" / "winnow_train.json").read_text())
    assert saved["selection_steps"] == [0, 5, 10]
    assert [e["step"] for e in result.log_history if "loss" in e] == list(range(1, 16))


KILL_SCRIPT = """
import os, signal, sys
from transformers import TrainerCallback
from winnow.train import TrainConfig, train

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

train(TrainConfig.from_yaml(sys.argv[1]), callbacks=[Kill()])
"""


def _resume_config(tmp_path, shared_data, name):
    cfg = yaml.safe_load(DATAFLEX_YAML.format(data=shared_data, out=tmp_path / name))
    cfg.update(warmup_step=2, update_step=2, update_times=2, save_steps=3,
               overwrite_output_dir=False, max_samples=12,
               component_params={"focus": "high", "batch_size": 12})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_killed_dynamic_run_resumes_to_the_same_selections(tmp_path, shared_data):
    whole = train(TrainConfig.from_yaml(_resume_config(tmp_path, shared_data, "whole")))
    path = _resume_config(tmp_path, shared_data, "killed")
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(kill_at=5)))
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == -9, proc.stderr[-2000:]
    run_dir = tmp_path / "killed"
    assert [p.name for p in run_dir.glob("checkpoint-*")] == ["checkpoint-3"]
    killed_log = SelectionLog(run_dir / "dynamic")
    assert killed_log.steps() == [0, 2, 4]  # step 4 was selected after the checkpoint
    run_id = json.loads((run_dir / "dynamic" / "run.json").read_text())["run_id"]

    resumed = train(TrainConfig.from_yaml(path))
    assert resumed.global_step == whole.global_step == 6
    assert json.loads((run_dir / "dynamic" / "run.json").read_text())["run_id"] == run_id
    assert [r["step"] for r in resumed.selections] == [0, 2, 4]
    for a, b in zip(whole.selections, resumed.selections):
        assert a["order"] == b["order"] and a["indices"] == b["indices"]
    assert json.loads((run_dir / "winnow_train.json").read_text())["resumed_from"].endswith(
        "checkpoint-3")


def test_offline_recipe_as_dynamic_selector(tmp_path, shared_data):
    cfg = yaml.safe_load(DATAFLEX_YAML.format(data=shared_data, out=tmp_path / "run"))
    cfg.update(warmup_step=1, update_step=1, update_times=1, max_samples=8,
               component_name="recipe",
               component_params={"recipe": "perplexity",
                                 "params": {"order": "desc", "max_length": 32}})
    result = train(TrainConfig.from_dict(cfg))
    assert result.global_step == 2
    update = result.selections[1]
    assert update["selector"] == "recipe" and update["trace"]["recipe"] == "perplexity"
    assert len(update["indices"]) == 2
    assert update["trace"]["stages"] == [{"stage": 0, "kind": "rank", "in": 8, "out": 2}]
    work = tmp_path / "run" / "dynamic" / "work"
    assert not list(work.glob("model_step_*"))  # merged copies are removed
