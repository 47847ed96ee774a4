"""Pictures of what protconv computes: variant-effect heatmaps (``heatmap``), 2-D maps of embeddings
(``embedding_map``, with the projections of ``projection``) and fine-tuning curves (``curves``).

Nothing here is imported by ``import protconv``: matplotlib loads (with the non-interactive Agg backend) only when
a picture is drawn. The modules take plain numbers (arrays, lists, Trainer's log history) and return matplotlib
figures, so callers and tests can read back what was drawn before ``save_figure`` writes it.
"""
