from gloss.eval.metrics import (KS, METRIC_KEYS, SEGMENTS, Evaluation, evaluate_ranking, metric_names, per_user_metrics,
                                target_ranks)
from gloss.eval.outputs import metrics_summary, per_user_lines, results_table, write_atomic, write_run_outputs
from gloss.eval.sampling import sample_examples

__all__ = ["KS", "METRIC_KEYS", "SEGMENTS", "Evaluation", "evaluate_ranking", "metric_names", "per_user_metrics",
           "target_ranks", "metrics_summary", "per_user_lines", "results_table", "write_atomic", "write_run_outputs",
           "sample_examples"]
