"""model_source: the position limit of every family (protconv's, ESM's, BERT/RoBERTa-style) and the vocabulary
check that refuses a tokenizer which cannot read proteins."""

from __future__ import annotations

import pytest
from transformers import BertConfig, EsmConfig, RobertaConfig

import protconv
from protconv.model_source import UnknownTokenizerError, check_vocabulary, position_limit, position_limit_reason


@pytest.mark.parametrize(
    ("config", "limit"),
    [
        (EsmConfig(vocab_size=33, pad_token_id=1, max_position_embeddings=1026, position_embedding_type="absolute"),
         1024),  # ESM-1b: positions numbered from pad_token_id + 1
        (EsmConfig(vocab_size=33, pad_token_id=1, max_position_embeddings=1026, position_embedding_type="rotary"),
         1024),  # ESM-2: its training context
        (RobertaConfig(max_position_embeddings=514, pad_token_id=1), 512),
        (BertConfig(max_position_embeddings=512), 512),
        (protconv.PerformerConfig(position_embedding_type="absolute", max_position_embeddings=300), 300),
        (protconv.PerformerConfig(position_embedding_type="rotary", max_position_embeddings=300), None),
        (protconv.ConvConfig(), None),
    ],
)  # fmt: skip
def test_position_limit_of_each_family(config, limit) -> None:
    assert position_limit(config) == limit
    if limit is not None:
        assert str(limit) in position_limit_reason(config)


def test_check_vocabulary_refuses_a_tokenizer_without_amino_acids(tmp_path) -> None:
    check_vocabulary(protconv.build_tokenizer(), "protconv")  # every amino acid has its own token
    from transformers import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "A", "C"]) + "\n")
    with pytest.raises(UnknownTokenizerError, match=r"^words: its tokenizer \(BertTokenizer\) has no token for the "
                       r"amino acids DEFGHIKLMNPQRSTVWY"):  # fmt: skip
        check_vocabulary(BertTokenizer(str(vocab)), "words")
