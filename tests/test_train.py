"""`winnow train` (static LoRA SFT), the SFT tokenisation, and `winnow export`."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from winnow.cli.train import export_cmd, train_cmd
from winnow.data.errors import DataError
from winnow.data.pool import Pool, Source
from winnow.data.tokenize import IGNORE_INDEX, tokenize_pool
from winnow.train import TrainConfig

app = typer.Typer()
app.command("train")(train_cmd)
app.command("export")(export_cmd)


def test_unknown_keys_are_named():
    with pytest.raises(DataError, match="lora_rnak"):
        TrainConfig.from_dict({"lora_rnak": 8, "do_train": True})
    with pytest.raises(ValueError, match="only 'lora'"):
        TrainConfig(finetuning_type="full")
    assert TrainConfig(lora_rank=4).lora_alpha == 8  # LLaMA-Factory default: 2 × rank


def test_prompt_tokens_are_masked():
    from winnow.models.causal_lm import load_causal_lm

    tok = load_causal_lm("default").tokenizer
    conv = [{"role": "user", "content": "Name a colour.", "instruction": "Name a colour.",
             "input": ""}, {"role": "assistant", "content": "Blue"}]
    pool = Pool(["a"], [conv], [{}], Source("x", "json", "alpaca"))
    for template in ("alpaca", "chat"):
        item = tokenize_pool(pool, tok, template, 128)[0]
        trained = [t for t, lab in zip(item["input_ids"], item["labels"]) if lab != IGNORE_INDEX]
        text = tok.decode(trained)
        assert text.startswith("Blue") and "colour" not in text
        assert trained[-1] in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"))
    short = tokenize_pool(pool, tok, "alpaca", 8)[0]
    assert len(short["input_ids"]) == 8 and any(x != IGNORE_INDEX for x in short["labels"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("train") / "run"
    config = out.parent / "sft.yaml"
    config.write_text(f"""
model_name_or_path: default
finetuning_type: lora
lora_rank: 2
lora_target: q_proj,v_proj
dataset: alpaca_en_demo
dataset_dir: {shared_data}
template: alpaca
cutoff_len: 64
max_samples: 16
per_device_train_batch_size: 2
learning_rate: 5.0e-3
max_steps: 3
save_steps: 2
logging_steps: 1
output_dir: {out}
report_to: none
""")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    return out


def test_train_saves_adapter_and_optimizer_state(trained_run):
    assert (trained_run / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in trained_run.glob("checkpoint-*")) == [
        "checkpoint-2", "checkpoint-3"]
    for folder in (trained_run, trained_run / "checkpoint-3"):
        state = torch.load(folder / "optimizer.pt", weights_only=True)["state"]
        assert len(state) == 2 * 30 * 2  # A and B of q_proj and v_proj in 30 layers
        assert all(s["exp_avg"].abs().sum() > 0 and "exp_avg_sq" in s for s in state.values())
    assert (trained_run / "loss.png").stat().st_size > 0
    assert (trained_run / "trainer_state.json").is_file()


def test_export_matches_base_plus_adapter(trained_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from winnow.models.causal_lm import load_causal_lm

    result = CliRunner().invoke(app, ["export", "--adapter", str(trained_run),
                                      "--out", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "merged").glob("*.safetensors"))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    lm = load_causal_lm("default", device="cpu", dtype="fp32")
    ids = lm.tokenizer("### Instruction:\nName three fruits.\n\n### Response:",
                       return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base_logits = lm.model(ids).logits
        adapted = PeftModel.from_pretrained(lm.model, str(trained_run)).eval()
        want = adapted(ids).logits
        got = merged(ids).logits
    assert (want - base_logits).abs().max() > 1e-3  # the adapter changed the model
    # merging W + BA rounds differently from the two-path forward: fp32 errors scale with
    # the logits' magnitude, so the absolute tolerance does too
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, atol=2e-5 * scale, rtol=1e-4)
