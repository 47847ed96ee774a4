"""Which task and which data (``TaskDataArguments``): shared by fine-tuning and the supervised baselines, so both
see one split."""

from __future__ import annotations

from dataclasses import dataclass, field

from .labels import parse_classes
from .vocabulary import TASK_TYPES, BadRowPolicy, TaskType


@dataclass
class TaskDataArguments:
    """Which task and which data: shared by fine-tuning and the supervised baselines, so both see one split."""

    task: TaskType = field(metadata={"help": " | ".join(TASK_TYPES)})
    train_file: str | None = field(
        default=None,
        metadata={"help": "CSV (TAPE seq,label or FLIP) or, for token tasks, sequences FASTA (or use --dataset_name)"},
    )
    validation_file: str | None = field(default=None, metadata={"help": "CSV of the validation split (TAPE)"})
    test_file: str | None = field(default=None, metadata={"help": "CSV of the test split (TAPE)"})
    labels_file: str | None = field(default=None, metadata={"help": "token tasks: per-residue labels FASTA"})
    mask_file: str | None = field(default=None, metadata={"help": "token tasks: 0/1 mask FASTA (0 = ignored)"})
    classes: str | None = field(
        default=None,
        metadata={
            "help": "class names in id order, saved as config.id2label: the label characters for token tasks (CHE), "
            "comma-separated names for classification (soluble,membrane). Default: the names found in the data "
            "(sorted), or integer labels as their own ids"
        },
    )
    sequence_column: str | None = field(default=None, metadata={"help": "default: sequence or seq"})
    label_column: str | None = field(default=None, metadata={"help": "default: target or label"})
    on_bad_row: BadRowPolicy = "skip"
    max_train_samples: int | None = field(default=None, metadata={"help": "subsample training rows (seeded)"})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "read the splits with `datasets` instead of files: a Hub dataset, a local folder of data files, "
            "a save_to_disk folder, or one .parquet/.csv/.tsv/.json/.jsonl/.arrow file"
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "the dataset's configuration (Hub)"})
    train_split_name: str = field(default="train", metadata={"help": "the dataset's training split"})
    validation_split_name: str | None = field(
        default=None, metadata={"help": "default: validation, valid, val or dev, whichever the dataset has"}
    )
    test_split_name: str | None = field(default=None, metadata={"help": "default: test, if the dataset has it"})
    mask_column: str | None = field(
        default=None, metadata={"help": "token tasks with --dataset_name: 0/1 mask column (default: mask, if any)"}
    )

    def __post_init__(self) -> None:
        if not (self.train_file or self.dataset_name):
            raise ValueError("the following arguments are required: --train_file or --dataset_name")
        if self.train_file and self.dataset_name:
            raise ValueError("--train_file and --dataset_name both name the training data; give one of them")
        if self.dataset_name:
            mixed = [
                name for name in ("validation_file", "test_file", "labels_file", "mask_file") if getattr(self, name)
            ]
            if mixed:
                options = ", ".join(f"--{name}" for name in mixed)
                raise ValueError(f"--dataset_name reads every split from the dataset; {options} cannot be mixed in")
        elif self.mask_column:
            raise ValueError("--mask_column reads a --dataset_name column; with files, use --mask_file")
        if self.classes is not None and self.task == "regression":
            raise ValueError("--classes names the classes of a classification task; regression has none")

    @property
    def source(self) -> str:
        """The training data as the user named it, for messages and model cards."""
        return self.dataset_name or self.train_file or ""


def given_classes(args: TaskDataArguments) -> list[str] | None:
    if args.classes is None:
        return None
    return parse_classes(args.classes, per_residue=args.task == "token-classification")
