"""Fine-tune a protconv model with transformers.Trainer (the same as `protconv finetune`).

    python examples/finetune.py --model carp-600k --task regression \
        --train_file ../shared/data/tasks/gb1/three_vs_rest.csv --output_dir runs/gb1 \
        --num_train_epochs 3 --per_device_train_batch_size 32 --learning_rate 1e-3 --eval_strategy epoch

The splits can come from a Hugging Face `datasets` dataset instead of files, as in transformers' run_glue.py
(a Hub name, a local folder, or one .parquet/.csv/.json(l) file; FLIP's set/validation columns split one table):

    python examples/finetune.py --model carp-600k --task classification --dataset_name data/localization/ \
        --sequence_column sequence --label_column location --output_dir runs/loc --max_length 1024

Class names (string labels, or --classes) are saved as config.id2label; sequences run whole unless --max_length is
given (the count cut is logged and kept in finetune_results.json). The run's log is OUTPUT/protconv.log
(--log_level warning for a quieter console).

Every `TrainingArguments` option works (bf16, gradient_accumulation_steps, load_best_model_at_end, ...).
Errors are those of `protconv finetune`: one line and exit code 2 for bad input (PROTCONV_DEBUG=1 shows
tracebacks).
"""

from __future__ import annotations

import sys

from protconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
