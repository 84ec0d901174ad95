from gloss.eval.metrics import Evaluation, evaluate_ranking, per_user_metrics, target_ranks
from gloss.eval.outputs import METRIC_KEYS, metrics_summary, per_user_lines, results_table, write_atomic, write_run_outputs

__all__ = ["Evaluation", "evaluate_ranking", "per_user_metrics", "target_ranks", "METRIC_KEYS", "write_atomic",
           "metrics_summary", "per_user_lines", "results_table", "write_run_outputs"]
