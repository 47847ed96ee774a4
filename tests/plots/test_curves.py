"""Fine-tuning curves: drawn from Trainer's log history, best checkpoint and baseline marked; report's hook."""

from __future__ import annotations

from transformers import TrainerState, TrainingArguments

from protconv.downstream.report import write_curves
from protconv.plots.curves import plot_finetune_curves
from tests.plots.images import assert_not_blank, read_png

HISTORY = [
    {"loss": 1.2, "step": 5},
    {"eval_loss": 1.0, "eval_spearman": 0.1, "step": 5},
    {"loss": 0.8, "step": 10},
    {"eval_loss": 0.9, "eval_spearman": 0.3, "step": 10},
    {"loss": 0.5, "step": 15},
    {"eval_loss": 0.95, "eval_spearman": 0.25, "step": 15},
    {"train_runtime": 3.0, "step": 15},
]


def test_curves_png(tmp_path, monkeypatch) -> None:
    import matplotlib.figure

    drawn = {}
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (drawn.update(f=self), save(self, *a, **k))
    )
    path = plot_finetune_curves(HISTORY, tmp_path / "curves.png", best_step=10, baseline=0.2, baseline_label="ridge")
    pixels = read_png(path)
    assert pixels.shape[1] > 800 and pixels.shape[0] > 300
    assert_not_blank(pixels)
    loss, metric = drawn["f"].axes
    assert list(loss.lines[0].get_ydata()) == [1.2, 0.8, 0.5]
    assert list(metric.lines[0].get_ydata()) == [0.1, 0.3, 0.25]  # eval_spearman, picked before eval_loss
    labels = [t.get_text() for t in metric.get_legend().get_texts()]
    assert labels == ["validation spearman", "best checkpoint (step 10)", "ridge (0.200)"]


def test_nothing_to_draw_writes_nothing(tmp_path) -> None:
    assert plot_finetune_curves([{"train_runtime": 1.0}], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_report_writes_curves_beside_the_results(tmp_path) -> None:
    state = TrainerState(log_history=HISTORY, best_global_step=10)
    args = TrainingArguments(output_dir=str(tmp_path), metric_for_best_model="spearman", report_to="none")
    write_curves(state, args, tmp_path, baseline=0.2)
    assert_not_blank(read_png(tmp_path / "curves.png"))
