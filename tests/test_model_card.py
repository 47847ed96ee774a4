"""Model cards: Hub metadata per head, parsed back with ``huggingface_hub.ModelCard`` and checked field by field."""

from __future__ import annotations

import pytest
import yaml
from huggingface_hub import ModelCard

import protconv
from protconv.model_card import (
    CITATIONS,
    USAGE_START,
    CardResult,
    build_card,
    config_yaml,
    hub_id_or_none,
    public_name,
    retarget_usage,
)

HEADS = [
    ("ConvForMaskedLM", "fill-mask", "AutoModelForMaskedLM"),
    ("ConvForSequenceClassification", "text-classification", "AutoModelForSequenceClassification"),
    ("ConvForTokenClassification", "token-classification", "AutoModelForTokenClassification"),
    ("ConvModel", "feature-extraction", "AutoModel"),
    ("PerformerForMaskedLM", "fill-mask", "AutoModelForMaskedLM"),
    ("PerformerForSequenceClassification", "text-classification", "AutoModelForSequenceClassification"),
]


def _model(name: str, tiny_conv_config, tiny_performer_config, **config_fields):
    config = tiny_conv_config if name.startswith("Conv") else tiny_performer_config
    for key, value in config_fields.items():
        setattr(config, key, value)
    return getattr(protconv, name)(config)


def _reload(card: ModelCard, tmp_path) -> ModelCard:
    path = tmp_path / "README.md"
    card.save(path)
    return ModelCard.load(path)


@pytest.mark.parametrize(("name", "tag", "auto_class"), HEADS)
def test_card_metadata_per_head(name, tag, auto_class, tiny_conv_config, tiny_performer_config, tmp_path) -> None:
    model = _model(name, tiny_conv_config, tiny_performer_config)
    card = _reload(build_card(model, "tiny", "A test model.", reference="org/tiny"), tmp_path)
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == tag
    assert data.license == "mit"
    assert {"protconv", "protein", "protein-language-model"} <= set(data.tags)
    widget = data.to_dict()["widget"]
    assert len(widget) == 1 and widget[0]["text"].startswith("MKTAYIAKQR")
    assert ("<mask>" in widget[0]["text"]) == (tag == "fill-mask")
    assert f'{auto_class}.from_pretrained("org/tiny")' in card.text
    assert f'pipeline("{tag}"' in card.text
    assert "REPO_OR_FOLDER" not in card.text
    family = "carp" if name.startswith("Conv") else "performer"
    assert CITATIONS[family] in card.text and CITATIONS["profile"] not in card.text


@pytest.mark.parametrize(("objective", "tag"), [("mlm+profile", "fill-mask"), ("profile", "feature-extraction")])
def test_pretraining_cards_follow_the_objective(objective, tag, tiny_conv_config, tmp_path) -> None:
    tiny_conv_config.pretraining_objective = objective
    card = _reload(build_card(protconv.ConvForPreTraining(tiny_conv_config), "t", "s"), tmp_path)
    assert card.data.pipeline_tag == tag
    assert CITATIONS["profile"] in card.text and CITATIONS["carp"] in card.text


def test_eval_results_become_model_index(tiny_conv_config, tmp_path) -> None:
    results = [
        CardResult("text-classification", "gb1_three_vs_rest.csv", "spearmanr", 0.8125, split="test"),
        CardResult("text-classification", "gb1_three_vs_rest.csv", "mse", 0.5, split="test"),
    ]
    model = protconv.ConvForSequenceClassification(tiny_conv_config)
    card = _reload(build_card(model, "gb1 model", "s", results=results), tmp_path)
    assert card.data.model_name == "gb1 model"
    parsed = {(r.metric_type, r.dataset_split, r.dataset_name): r.metric_value for r in card.data.eval_results}
    assert parsed == {
        ("spearmanr", "test", "gb1_three_vs_rest.csv"): 0.8125,
        ("mse", "test", "gb1_three_vs_rest.csv"): 0.5,
    }
    assert all(r.task_type == "text-classification" for r in card.data.eval_results)
    assert "| gb1_three_vs_rest.csv | test | spearmanr | 0.8125 |" in card.text


def test_hub_ids_enter_metadata_local_names_do_not(tiny_conv_config, tmp_path) -> None:
    (tmp_path / "local-org").mkdir()
    (tmp_path / "local-org" / "data").mkdir()
    model = protconv.ConvForMaskedLM(tiny_conv_config)
    card = build_card(
        model, "t", "s", datasets=["my-org/proteins", str(tmp_path / "x.fasta")], base_model="my-org/carp-600k"
    )
    assert card.data.datasets == ["my-org/proteins"]
    assert card.data.base_model == "my-org/carp-600k"
    assert hub_id_or_none("carp-600k") is None  # a preset, not a repo
    assert hub_id_or_none("./org/name") is None and hub_id_or_none("/abs/path") is None


def test_no_absolute_path_reaches_a_card(tiny_conv_config, tmp_path) -> None:
    model = protconv.ConvForMaskedLM(tiny_conv_config)
    secret = str(tmp_path / "private" / "proteins.fasta")
    card = build_card(model, "t", "s", details={"data": secret}, sections={"Training": config_yaml({"f": [secret]})})
    assert str(tmp_path) not in str(card) and "proteins.fasta" in str(card)
    assert public_name({"a": [secret, "relative/x.fa"], "b": None}) == {
        "a": ["proteins.fasta", "relative/x.fa"],
        "b": None,
    }


def test_config_yaml_reads_back_with_real_types() -> None:
    arguments = {"max_steps": 20, "learning_rate": 0.001, "resume_from": None, "train_files": ["a.fa"], "plot": True}
    text = config_yaml(arguments, leave_out={"resume_from"})
    assert yaml.safe_load(text) == {"learning_rate": 0.001, "max_steps": 20, "plot": True, "train_files": ["a.fa"]}
    assert yaml.safe_load(config_yaml({"dataset_name": None})) == {"dataset_name": None}  # null, not 'None'


def test_usage_is_retargeted_and_only_there(tiny_conv_config) -> None:
    card = str(build_card(protconv.ConvForMaskedLM(tiny_conv_config), "t", "s", reference="runs/x/model"))
    moved = retarget_usage(card, "org/carp")
    assert 'from_pretrained("org/carp")' in moved and "runs/x/model" not in moved
    assert moved.count(USAGE_START) == 1
    assert (
        retarget_usage("---\nlicense: mit\n---\n# hand-written\n", "org/x")
        == "---\nlicense: mit\n---\n# hand-written\n"
    )


@pytest.mark.parametrize("broken", ["---\nlicense: [unclosed\n---\n", "---\n: :\n---\n", "no front matter"])
def test_a_hand_edited_card_never_stops_a_push(broken, tiny_conv_config) -> None:
    card = str(build_card(protconv.ConvForMaskedLM(tiny_conv_config), "t", "s"))
    usage = card[card.index(USAGE_START) :]
    assert retarget_usage(broken + usage, "org/x") == broken + usage  # no pipeline tag to render it with
    assert retarget_usage(broken, "org/x") == broken


def test_no_relative_data_path_reaches_a_card(tiny_conv_config, tmp_path, monkeypatch) -> None:
    """Pretraining cards named their data by the relative path given (``data/split/train.fasta``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "split").mkdir(parents=True)
    (tmp_path / "data" / "split" / "train.fasta").write_text(">a\nMKV\n")
    given = "data/split/train.fasta"
    model = protconv.ConvForMaskedLM(tiny_conv_config)
    card = str(build_card(model, "t", "s", details={"data": given}, sections={"Training": config_yaml({"f": [given]})}))
    assert "data/split" not in card and "train.fasta" in card
    assert public_name(["data/split", "../x/y.fa", "org/dataset", "https://h.org/a/b"]) == [
        "split",
        "y.fa",
        "org/dataset",
        "https://h.org/a/b",
    ]


def test_intended_use_matches_the_head(tiny_conv_config) -> None:
    model = protconv.ConvForMaskedLM(tiny_conv_config)
    masked = str(build_card(model, "t", "s"))
    regression = str(build_card(model, "t", "s", intended_use="regression"))
    residues = str(build_card(model, "t", "s", intended_use="token-classification"))
    assert "masked-residue prediction" in masked and "masked-residue prediction" not in regression
    assert "one predicted value per protein" in regression and "per residue" in residues
