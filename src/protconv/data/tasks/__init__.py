"""Downstream task data, one module per concern: ``vocabulary`` (the words: task types, splits, policies), ``rows``
(``LabelledSequences``, bad rows and their report), ``labels`` (label parsing, ``--classes``, class ids),
``columns`` (which column is which), ``flip`` (FLIP's split marks), ``sequence_tables`` (per-protein CSV and
``datasets`` tables), ``residues`` (per-residue FASTA triples and tables), ``arguments`` (``TaskDataArguments``),
``dataset_splits`` (a ``datasets`` dataset's splits) and ``splits`` (arguments -> train/valid/test)."""
