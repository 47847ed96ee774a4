"""Exact mode's attn_implementation: sdpa (default) and eager agree; FAVOR+ ignores it; others are refused."""

from __future__ import annotations

import pytest
import torch

import protconv


def _config(**kwargs) -> protconv.PerformerConfig:
    return protconv.PerformerConfig(
        hidden_size=32, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=33, **kwargs
    )


def _inputs() -> dict[str, torch.Tensor]:
    ids = torch.randint(4, 30, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 1), "attention_mask": mask}


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_and_eager_agree_with_padding_and_load_by_name(tmp_path, causal: bool) -> None:
    protconv.PerformerModel(_config(attention="softmax", causal=causal)).save_pretrained(tmp_path)
    sdpa = protconv.PerformerModel.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    eager = protconv.PerformerModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert (sdpa.config._attn_implementation, eager.config._attn_implementation) == ("sdpa", "eager")
    assert protconv.PerformerModel.from_pretrained(tmp_path).config._attn_implementation == "sdpa"
    with torch.no_grad():
        a, b = sdpa(**_inputs(), output_attentions=True), eager(**_inputs(), output_attentions=True)
    real = _inputs()["attention_mask"].bool()
    torch.testing.assert_close(a.last_hidden_state[real], b.last_hidden_state[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.attentions[0], b.attentions[0], atol=1e-5, rtol=1e-5)


def test_favor_ignores_attn_implementation_and_others_are_refused(tmp_path) -> None:
    protconv.PerformerModel(_config()).save_pretrained(tmp_path)
    outs = []
    for implementation in ("sdpa", "eager"):
        model = protconv.PerformerModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        with torch.no_grad():
            outs.append(model(**_inputs()).last_hidden_state)
    assert torch.equal(outs[0], outs[1])
    with pytest.raises(ValueError, match="flex_attention"):
        protconv.PerformerModel.from_pretrained(tmp_path, attn_implementation="flex_attention")
