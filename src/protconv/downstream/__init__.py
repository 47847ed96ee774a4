"""Downstream tasks: ``task_data`` (the splits, tokenised datasets and collator), ``finetune`` (Trainer: full,
frozen or LoRA), ``baselines`` (one-hot linear model and small CNN from scratch on the same splits) and
``metrics`` (the scores both report). Nothing here imports ``pretraining``."""
